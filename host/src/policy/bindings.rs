//! The host side of `wit/policy.wit`: one generated module per world. The
//! bidder and selector worlds reuse the scorer's interface modules (`with`), so
//! each import is implemented once. Generated types never leave `policy/`.

pub(crate) mod scorer {
    wasmtime::component::bindgen!({
        world: "scorer",
        path: "../wit",
        imports: { default: trappable },
    });
}

pub(crate) mod bidder {
    wasmtime::component::bindgen!({
        world: "bidder",
        path: "../wit",
        imports: { default: trappable },
        with: {
            "plugboard:policy/types": super::scorer::plugboard::policy::types,
            "plugboard:policy/log": super::scorer::plugboard::policy::log,
            "plugboard:policy/kv": super::scorer::plugboard::policy::kv,
        },
    });
}

pub(crate) mod selector {
    wasmtime::component::bindgen!({
        world: "selector",
        path: "../wit",
        imports: { default: trappable },
        with: {
            "plugboard:policy/types": super::scorer::plugboard::policy::types,
            "plugboard:policy/log": super::scorer::plugboard::policy::log,
            "plugboard:policy/kv": super::scorer::plugboard::policy::kv,
            "plugboard:policy/caller-history": super::scorer::plugboard::policy::caller_history,
        },
    });
}

pub(crate) use scorer::plugboard::policy::{caller_history, kv, log, types};

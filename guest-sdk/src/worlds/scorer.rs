//! Bindings of the `scorer` world and the adapter behind `export_scorer!`.

wit_bindgen::generate!({
    world: "scorer",
    path: "../wit",
    pub_export_macro: true,
    export_macro_name: "__export_scorer_world",
});

world_glue!(with caller history);

/// Runs policy `P` on a call handed over by the host.
pub fn run<P: crate::Scorer>(call: Call) -> Result<Quality, String> {
    P::score(&call.into(), &WasmHost).map(Into::into)
}

//! The host's layering, as a test: every `crate::…` path in `host/src/`
//! must name a module its own module may use. The arrows are listed once,
//! in [`LAYERS`], and shown in docs/ARCHITECTURE.md (generated from it).
//! A new top-level module must be given a row, so it is placed on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of `host/src/`, the modules it may use, and what
/// it is. From the ground floor up: a row names only rows above it.
const LAYERS: &[(&str, &[&str], &str)] = &[
    (
        "model",
        &[],
        "the vocabulary: tenants, campaigns, bids, call facts, records, worlds",
    ),
    ("clock", &[], "the one source of time"),
    (
        "hash",
        &[],
        "stable hashing (canary split, content addresses)",
    ),
    ("rate", &[], "token buckets"),
    ("number", &[], "E.164 numbers"),
    ("metrics", &[], "the Prometheus registry"),
    (
        "sip",
        &[],
        "SIP messages: parsing, validation, URIs, locating (RFC 3261, 3263)",
    ),
    (
        "transaction",
        &["sip"],
        "SIP transactions, sans-IO (RFC 3261 §17)",
    ),
    (
        "dialog",
        &["sip"],
        "SIP dialogs and session timers, sans-IO (RFC 4028)",
    ),
    (
        "geography",
        &["model"],
        "a caller's area, region and time zone from the number",
    ),
    (
        "access",
        &["model"],
        "trust between tenants: ownership and quotas",
    ),
    (
        "auction",
        &["model", "access"],
        "eligibility, ranking, caps and places, sans-IO",
    ),
    (
        "b2bua",
        &[
            "sip",
            "transaction",
            "dialog",
            "auction",
            "model",
            "clock",
            "rate",
            "hash",
            "number",
        ],
        "one call's two legs and ring tree, sans-IO",
    ),
    (
        "dni",
        &["model"],
        "dynamic number insertion: pools and visitor sessions",
    ),
    (
        "marketplace",
        &["model"],
        "what bidders may learn of a campaign's traffic",
    ),
    (
        "fair",
        &["clock", "rate"],
        "turns and CPU shares across tenants, sans-IO",
    ),
    (
        "names",
        &["sip"],
        "target host names, located off the call path",
    ),
    (
        "policy",
        &["model", "clock", "hash"],
        "the WebAssembly policy runtime (wasmtime)",
    ),
    (
        "store",
        &["model", "access"],
        "persistence (sled): keyspaces, codec, transactions",
    ),
    (
        "replay",
        &["model", "policy", "store"],
        "stored calls run again through a candidate version",
    ),
    (
        "lifecycle",
        &["model", "policy", "store", "fair", "clock", "replay"],
        "policy uploads, compiles, deployments and replays",
    ),
    (
        "config",
        &["b2bua", "fair", "policy"],
        "the configuration file",
    ),
    (
        "cli",
        &["model", "policy", "clock", "store", "replay"],
        "`plugboard policy …` and `plugboard replay`",
    ),
    (
        "api",
        &[
            "model",
            "access",
            "auction",
            "clock",
            "dni",
            "lifecycle",
            "marketplace",
            "metrics",
            "names",
            "number",
            "policy",
            "rate",
            "replay",
            "sip",
            "store",
        ],
        "the HTTP API (axum) and its OpenAPI contract",
    ),
    (
        "runtime",
        &[
            "model",
            "access",
            "api",
            "auction",
            "b2bua",
            "clock",
            "config",
            "dialog",
            "dni",
            "fair",
            "geography",
            "lifecycle",
            "metrics",
            "names",
            "number",
            "policy",
            "sip",
            "store",
            "transaction",
        ],
        "the edge: sockets, timers and tasks that drive the rest",
    ),
];

/// Modules that are logic only (or, for `model`, data only): they take
/// events and return decisions, and never reach persistence, the policy
/// runtime, the API or the runtime's I/O.
const PURE: &[&str] = &["sip", "transaction", "dialog", "b2bua", "auction", "model"];
const NOT_FOR_PURE: &[&str] = &["store", "policy", "api", "runtime"];

/// An import that breaks the layering: where, and what it names.
#[derive(Debug, PartialEq)]
struct Violation {
    file: String,
    line: usize,
    module: String,
    uses: String,
}

fn allowed(module: &str) -> Option<&'static [&'static str]> {
    LAYERS
        .iter()
        .find(|(name, _, _)| *name == module)
        .map(|(_, uses, _)| *uses)
}

/// The module path of a file under `src/`: `auction/ledger.rs` is
/// `["auction", "ledger"]`, `store/mod.rs` is `["store"]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The top-level modules a line of code names: `crate::x` paths, the
/// members of a `crate::{x, y::…}` group, and `super::` paths that climb
/// out of the file's own top-level module.
fn modules_named(code: &str, path: &[String]) -> Vec<String> {
    let mut named = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let before = &rest[..at];
        rest = after;
        if before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = after.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or("");
            named.extend(group.split(',').filter_map(|member| {
                let head = member.trim().split("::").next()?.trim();
                (!head.is_empty()).then(|| head.to_owned())
            }));
        } else {
            named.push(leading_ident(after));
        }
    }
    let mut rest = code;
    while let Some(at) = rest.find("super::") {
        let before = &rest[..at];
        if before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
            rest = &rest[at + 7..];
            continue;
        }
        let mut climbs = 0;
        let mut after = &rest[at..];
        while let Some(next) = after.strip_prefix("super::") {
            climbs += 1;
            after = next;
        }
        rest = after;
        let depth = path.len().saturating_sub(climbs);
        if depth == 0 {
            named.push(leading_ident(after));
        }
    }
    named.retain(|m| !m.is_empty() && m != "self");
    named
}

fn leading_ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// What breaks the layering in one file's text; `modules` are the
/// top-level modules there are (a name outside them is an item of the
/// crate root, or of a module a `super` in an inline `mod` leads to).
fn violations_in(relative: &Path, text: &str, modules: &BTreeSet<String>) -> Vec<Violation> {
    let path = module_path(relative);
    let Some(module) = path.first().cloned() else {
        return Vec::new();
    };
    let file = relative.display().to_string();
    if module == "lib" || module == "main" {
        return Vec::new();
    }
    let Some(may_use) = allowed(&module) else {
        return vec![Violation {
            file,
            line: 0,
            module,
            uses: "(no row in LAYERS: give the new module one)".to_owned(),
        }];
    };
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        for named in modules_named(code, &path) {
            if modules.contains(&named) && named != module && !may_use.contains(&named.as_str()) {
                found.push(Violation {
                    file: file.clone(),
                    line: index + 1,
                    module: module.clone(),
                    uses: named,
                });
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read host/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn host_src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../host/src")
}

/// The top-level modules of `host/src/`: its files and folders.
fn top_level_modules(src: &Path) -> BTreeSet<String> {
    std::fs::read_dir(src)
        .expect("read host/src")
        .map(|entry| {
            let path = entry.expect("dir entry").path();
            path.file_stem()
                .expect("a name")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn every_module_imports_only_what_its_layer_allows() {
    let src = host_src();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(
        files.len() > 50,
        "found {} files under host/src",
        files.len()
    );
    let modules = top_level_modules(&src);
    for (module, _, _) in LAYERS {
        assert!(
            modules.contains(*module),
            "LAYERS names `{module}`, not in host/src"
        );
    }
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a source file");
        let relative = file.strip_prefix(&src).expect("under src");
        broken.extend(violations_in(relative, &text, &modules));
    }
    let report: Vec<String> = broken
        .iter()
        .map(|v| {
            format!(
                "host/src/{}:{}: `{}` may not use `{}`",
                v.file, v.line, v.module, v.uses
            )
        })
        .collect();
    assert!(
        report.is_empty(),
        "imports against the layering (tests/it/layering.rs, LAYERS):\n{}",
        report.join("\n")
    );
}

#[test]
fn a_wrong_import_is_found_with_its_file_and_line() {
    let modules: BTreeSet<String> = LAYERS.iter().map(|(m, _, _)| m.to_string()).collect();
    let violations_in = |file: &str, text: &str| violations_in(Path::new(file), text, &modules);
    let text = "use crate::model::Bid;\n\nuse crate::store::Store;\n";
    assert_eq!(
        violations_in("auction/ledger.rs", text),
        [Violation {
            file: "auction/ledger.rs".to_owned(),
            line: 3,
            module: "auction".to_owned(),
            uses: "store".to_owned(),
        }]
    );
    let grouped = "    use crate::{model::Bid, runtime::serve};";
    assert_eq!(violations_in("b2bua/call.rs", grouped)[0].uses, "runtime");
    let one_up = "use super::policy::Limits;";
    assert!(
        violations_in("sip/parse.rs", one_up).is_empty(),
        "one `super` from sip/parse.rs stays in sip"
    );
    let two_up = "use super::super::policy::Limits;";
    assert_eq!(violations_in("sip/parse.rs", two_up)[0].uses, "policy");
    assert_eq!(
        violations_in("newcomer.rs", "")[0].uses,
        "(no row in LAYERS: give the new module one)"
    );
    assert!(
        violations_in("auction/mod.rs", "//! unlike crate::store").is_empty(),
        "prose is not an import"
    );
    assert!(
        violations_in("hash.rs", "    use super::fnv1a;").is_empty(),
        "a `super` in a file's tests module names the file's items"
    );
}

#[test]
fn the_table_keeps_pure_modules_pure_and_has_no_cycle() {
    for (module, uses, _) in LAYERS {
        if PURE.contains(module) {
            for forbidden in NOT_FOR_PURE {
                assert!(
                    !uses.contains(forbidden),
                    "{module} is pure, yet may use {forbidden}"
                );
            }
        }
        if ["store", "policy"].contains(module) {
            assert!(!uses.contains(&"api"), "{module} may not use api");
        }
        for used in *uses {
            assert!(
                allowed(used).is_some(),
                "{module} uses {used}, which has no row"
            );
        }
    }
    // Each row names only rows above it: the arrows point down, so no cycle.
    let mut above: BTreeSet<&str> = BTreeSet::new();
    for (module, uses, _) in LAYERS {
        for used in *uses {
            assert!(
                above.contains(used),
                "{module} uses {used}, listed below it"
            );
        }
        above.insert(module);
    }
    let rows: BTreeMap<&str, usize> = LAYERS.iter().map(|(m, _, _)| (*m, 1)).collect();
    assert_eq!(rows.len(), LAYERS.len(), "a module has two rows");
}

/// The table as docs/ARCHITECTURE.md shows it.
fn table_markdown() -> String {
    let mut out = String::from("| module | may use | what it is |\n|---|---|---|\n");
    for (module, uses, what) in LAYERS {
        let uses = if uses.is_empty() {
            "—".to_owned()
        } else {
            uses.iter()
                .map(|u| format!("`{u}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let pure = if PURE.contains(module) { " (pure)" } else { "" };
        out.push_str(&format!("| `{module}`{pure} | {uses} | {what} |\n"));
    }
    out
}

#[test]
fn the_architecture_docs_hold_the_layering_the_test_applies() {
    tests::generated_docs::assert_section("ARCHITECTURE.md", "the layers", &table_markdown());
}

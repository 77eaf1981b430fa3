//! Parts of `docs/` that the code writes: a table between
//! `<!-- generated: NAME … -->` and `<!-- end of NAME -->` must be what the
//! code says, so the docs cannot drift from it. `UPDATE_EXPECT=1` rewrites
//! it, as it does the snapshots.

use std::path::PathBuf;

/// Panics unless the section `name` of `docs/<file>` is `wanted`.
pub fn assert_section(file: &str, name: &str, wanted: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(file);
    let docs = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let start = format!("<!-- generated: {name}");
    let end = format!("<!-- end of {name} -->");
    let at = docs
        .find(&start)
        .unwrap_or_else(|| panic!("docs/{file} has no `{start} … -->` marker"));
    let (before, rest) = docs.split_at(at);
    let marker_end = rest.find("-->").expect("the marker closes") + 3;
    let (marker, rest) = rest.split_at(marker_end);
    let (section, after) = rest.split_at(
        rest.find(&end)
            .unwrap_or_else(|| panic!("docs/{file} has no `{end}` marker")),
    );
    let wanted = format!("\n{wanted}");
    if section == wanted {
        return;
    }
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, format!("{before}{marker}{wanted}{after}")).expect("write docs");
        return;
    }
    panic!("docs/{file}'s {name} differs from the code's; run the test with UPDATE_EXPECT=1");
}

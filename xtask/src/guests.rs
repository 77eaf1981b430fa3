//! Building guests: example policies and test guests, compiled for a wasm
//! target with the `policy` profile and turned into components.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cargo;

const CORE_TARGET: &str = "wasm32-unknown-unknown";
const WASI_TARGET: &str = "wasm32-wasip2";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Adds the wasm targets to the toolchain when missing (rustup reaches the
/// package registry; it never needs a new toolchain).
pub fn ensure_wasm_targets() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("cannot run rustup")?;
    let installed = String::from_utf8_lossy(&installed.stdout);
    for target in [CORE_TARGET, WASI_TARGET] {
        if !installed.lines().any(|l| l.trim() == target) {
            eprintln!("xtask: rustup target add {target}");
            let status = Command::new("rustup")
                .args(["target", "add", target])
                .status()?;
            if !status.success() {
                bail!("rustup target add {target} failed");
            }
        }
    }
    Ok(())
}

/// Crate folders directly under `dir`, by package name (folder == package).
fn crates_in(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.join("Cargo.toml").is_file()
            && let Some(name) = path.file_name().and_then(|n| n.to_str())
        {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Builds `example-policies/*` into `target/policies/<crate>.wasm`.
pub fn build_example_policies() -> Result<Vec<PathBuf>> {
    let names = crates_in(&workspace_root().join("example-policies"))?;
    build_components(&names, CORE_TARGET, &target_dir().join("policies"))
}

/// Builds `tests/guests/*` into `target/test-guests/`: a component per crate
/// (those named `wasi-*` with the WASI target, which links WASI imports in),
/// plus the bare core module of each `wasm32-unknown-unknown` one as
/// `<crate>.core.wasm`, for the tests that upload a non-component.
pub fn build_test_guests() -> Result<Vec<PathBuf>> {
    let names = crates_in(&workspace_root().join("tests/guests"))?;
    let out = target_dir().join("test-guests");
    let (wasi, core): (Vec<String>, Vec<String>) =
        names.into_iter().partition(|n| n.starts_with("wasi-"));
    let mut built = build_components(&core, CORE_TARGET, &out)?;
    for name in &core {
        let module = core_module_path(CORE_TARGET, name);
        let dest = out.join(format!("{name}.core.wasm"));
        std::fs::copy(&module, &dest)
            .with_context(|| format!("cannot copy {}", module.display()))?;
        built.push(dest);
    }
    built.extend(build_components(&wasi, WASI_TARGET, &out)?);
    Ok(built)
}

fn core_module_path(target: &str, name: &str) -> PathBuf {
    target_dir()
        .join(target)
        .join("policy")
        .join(format!("{}.wasm", name.replace('-', "_")))
}

fn build_components(names: &[String], target: &str, out: &Path) -> Result<Vec<PathBuf>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec!["build", "--profile", "policy", "--target", target];
    for name in names {
        args.extend(["-p", name.as_str()]);
    }
    cargo(&args)?;
    std::fs::create_dir_all(out)?;
    let mut built = Vec::new();
    for name in names {
        let module = core_module_path(target, name);
        let dest = out.join(format!("{name}.wasm"));
        if target == WASI_TARGET {
            // rustc already links wasip2 binaries into components.
            std::fs::copy(&module, &dest)?;
        } else {
            componentize_file(&module, &dest)?;
        }
        eprintln!("xtask: {}", dest.display());
        built.push(dest);
    }
    Ok(built)
}

/// Wraps a core module carrying the guest SDK's component-type sections into
/// a component: only the imports it uses, only the exports it defines.
pub fn componentize_file(core: &Path, out: &Path) -> Result<()> {
    let module = std::fs::read(core).with_context(|| format!("cannot read {}", core.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .with_context(|| format!("{} carries no usable component type", core.display()))?
        .validate(true)
        .encode()
        .with_context(|| format!("cannot make a component of {}", core.display()))?;
    std::fs::write(out, component).with_context(|| format!("cannot write {}", out.display()))
}

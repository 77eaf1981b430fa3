//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `cargo xtask test`: everything CI runs (toolchain targets, guest builds,
//!   fmt, clippy, all tests);
//! - `cargo xtask serve [ARGS]`: build the example policies and the release
//!   binary, then `plugboard serve ARGS` (the example policies load on first start);
//! - `cargo xtask bench [FILTER]`: build the example policies, run the benchmarks;
//! - `cargo xtask policies`: build the example policies into `target/policies/`;
//! - `cargo xtask guests`: build the test guests into `target/test-guests/`;
//! - `cargo xtask component CORE.wasm OUT.wasm`: wrap a core module built with
//!   the guest SDK into a component.

mod guests;
mod python;

use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("bench") => bench(&args[1..]),
        Some("serve") => serve(&args[1..]),
        Some("policies") => {
            guests::ensure_wasm_targets()?;
            guests::build_example_policies().map(drop)
        }
        Some("guests") => {
            guests::ensure_wasm_targets()?;
            guests::build_test_guests().map(drop)
        }
        Some("python-tools") => python::ensure_python_tools(),
        Some("component") => match &args[1..] {
            [core, out] => guests::componentize_file(core.as_ref(), out.as_ref()),
            _ => bail!("usage: cargo xtask component CORE.wasm OUT.wasm"),
        },
        _ => bail!(
            "usage: cargo xtask (test | serve [ARGS] | bench [FILTER] | policies | guests | python-tools | component CORE.wasm OUT.wasm)"
        ),
    }
}

/// The whole suite, as CI runs it on a fresh clone.
fn test() -> Result<()> {
    guests::ensure_wasm_targets()?;
    ensure_debian_package("/usr/bin/sipp", "sip-tester")?;
    python::ensure_python_tools()?;
    guests::build_example_policies()?;
    guests::build_test_guests()?;
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    // The CLI tests run the real binary; building it with every target
    // resolves features as `cargo test` does, so nothing is built twice.
    cargo(&["build", "--workspace", "--all-targets"])?;
    cargo(&["test", "--workspace"])?;
    Ok(())
}

/// The main job: everything a newcomer needs to try Plugboard, then the server.
fn serve(args: &[String]) -> Result<()> {
    guests::ensure_wasm_targets()?;
    let policies = guests::build_example_policies()?;
    let folder = policies
        .first()
        .and_then(|p| p.parent())
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let data_dir = args
        .iter()
        .position(|a| a == "--data-dir")
        .and_then(|i| args.get(i + 1))
        .map_or("plugboard-data", String::as_str);
    eprintln!(
        "xtask: building plugboard (release); the first build compiles wasmtime and \
         everything else, about 15 minutes on 2 cores; later ones take seconds"
    );
    cargo(&["build", "--release", "-p", "host", "--bin", "plugboard"])?;
    let plugboard = guests::target_dir().join("release/plugboard");
    // A fresh data directory gets its first operator key, printed once; one
    // bootstrapped before keeps its keys, and that is no error.
    let bootstrap = Command::new(&plugboard)
        .args(["admin", "bootstrap", "--data-dir", data_dir])
        .output()
        .context("cannot run plugboard admin bootstrap")?;
    match bootstrapped(
        bootstrap.status.success(),
        &String::from_utf8_lossy(&bootstrap.stdout),
        &String::from_utf8_lossy(&bootstrap.stderr),
    ) {
        Ok(Bootstrap::NewKey(key)) => {
            println!("{key}");
            eprintln!("xtask: that is the operator's API key; it is shown only once");
        }
        Ok(Bootstrap::Already) => eprintln!(
            "xtask: {data_dir} has its operator already; use the key its first run printed"
        ),
        Err(error) => bail!("plugboard admin bootstrap: {error}"),
    }
    let mut serve: Vec<String> = vec!["serve".into()];
    if !args.iter().any(|a| a.starts_with("--example-policies")) {
        serve.extend(["--example-policies".into(), folder]);
    }
    serve.extend(args.iter().cloned());
    eprintln!("xtask: {} {}", plugboard.display(), serve.join(" "));
    let status = Command::new(&plugboard)
        .args(&serve)
        .status()
        .context("cannot run plugboard serve")?;
    if !status.success() {
        bail!("plugboard serve ended: {status}");
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
enum Bootstrap {
    NewKey(String),
    Already,
}

/// What `plugboard admin bootstrap` said: a new key, a data directory that
/// has its operator already, or an error worth stopping for.
fn bootstrapped(success: bool, stdout: &str, stderr: &str) -> Result<Bootstrap, String> {
    if success {
        Ok(Bootstrap::NewKey(stdout.trim().to_owned()))
    } else if stderr.contains("already bootstrapped") {
        Ok(Bootstrap::Already)
    } else {
        Err(stderr.trim().to_owned())
    }
}

fn bench(filter: &[String]) -> Result<()> {
    guests::ensure_wasm_targets()?;
    guests::build_example_policies()?;
    guests::build_test_guests()?;
    let mut args = vec!["bench", "-p", "host", "--bench", "policy", "--"];
    args.extend(filter.iter().map(String::as_str));
    cargo(&args)
}

/// Installs a Debian package when `binary` is missing (tests drive real peers).
fn ensure_debian_package(binary: &str, package: &str) -> Result<()> {
    if std::path::Path::new(binary).exists() {
        return Ok(());
    }
    eprintln!("xtask: apt-get install {package}");
    let update = Command::new("apt-get").args(["update", "-qq"]).status()?;
    let install = Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !update.success() || !install.success() || !std::path::Path::new(binary).exists() {
        bail!("cannot install {package} (needed for {binary})");
    }
    Ok(())
}

pub(crate) fn cargo(args: &[&str]) -> Result<()> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(guests::workspace_root())
        .status()
        .with_context(|| format!("cannot run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Bootstrap, bootstrapped};

    #[test]
    fn a_second_bootstrap_is_no_error_and_a_real_failure_is() {
        assert_eq!(
            bootstrapped(true, "pbk_abc\n", ""),
            Ok(Bootstrap::NewKey("pbk_abc".into()))
        );
        let again = "error: already bootstrapped: an operator tenant exists; create more keys with POST /v1/api-keys\n";
        assert_eq!(bootstrapped(false, "", again), Ok(Bootstrap::Already));
        assert_eq!(
            bootstrapped(false, "", "error: cannot open the store: locked\n"),
            Err("error: cannot open the store: locked".into())
        );
    }
}

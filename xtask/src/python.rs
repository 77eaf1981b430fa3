//! The Python tools some tests drive (the OpenAPI validator, schemathesis),
//! in a virtualenv under the target dir at the versions
//! `tests/python-requirements.txt` pins.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::guests::{target_dir, workspace_root};

/// Creates or refreshes `target/python-tools` when the pinned list changed.
pub fn ensure_python_tools() -> Result<()> {
    let requirements = workspace_root().join("tests/python-requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("cannot read {}", requirements.display()))?;
    let venv = target_dir().join("python-tools");
    let stamp = venv.join("installed-requirements.txt");
    if std::fs::read_to_string(&stamp).is_ok_and(|installed| installed == wanted) {
        return Ok(());
    }
    eprintln!("xtask: python3 -m venv {} and pip install", venv.display());
    let created = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .context("cannot run python3")?;
    if !created.success() {
        bail!("python3 -m venv {} failed", venv.display());
    }
    let installed = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements)
        .status()
        .context("cannot run the virtualenv's pip")?;
    if !installed.success() {
        bail!("pip install -r {} failed", requirements.display());
    }
    std::fs::write(&stamp, wanted)?;
    Ok(())
}

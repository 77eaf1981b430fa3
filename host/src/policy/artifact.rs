//! On-disk cache of compiled policies, keyed by the engine's compatibility hash
//! and the component's SHA-256, so that a restart loads instead of compiling.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A folder of compiled artifacts this host wrote.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ArtifactCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the compiled form of `sha256` is kept for `engine`.
    pub(crate) fn path(&self, engine: &Engine, sha256: &str) -> PathBuf {
        self.dir
            .join(engine_fingerprint(engine))
            .join(format!("{sha256}.cwasm"))
    }

    /// The compiled form of `sha256`, if this engine compiled it before.
    pub(crate) fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(engine, sha256);
        if !path.is_file() {
            return None;
        }
        // SAFETY: wasmtime trusts a precompiled artifact to be its own output.
        // Only files this cache wrote are read: the folder is the host's data
        // directory, the name carries the engine's compatibility hash and the
        // source's SHA-256, and wasmtime still checks the artifact's header.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "discarding unreadable compiled policy");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Writes the compiled form; a failure costs a recompile later, nothing more.
    pub(crate) fn store(&self, engine: &Engine, sha256: &str, component: &Component) {
        let path = self.path(engine, sha256);
        let written = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|bytes| write_atomically(&path, &bytes));
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), %error, "cannot cache compiled policy");
        }
    }
}

pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("artifact path has no folder"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Hex SHA-256 of the engine's compatibility hash: changes with the wasmtime
/// version and every setting that affects compiled code.
fn engine_fingerprint(engine: &Engine) -> String {
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..12])
}

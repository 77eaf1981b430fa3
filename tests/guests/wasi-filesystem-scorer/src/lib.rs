//! A scorer that tries to read the host's files. Built for `wasm32-wasip2`, its
//! component imports `wasi:filesystem`, which no Plugboard world provides.

use guest_sdk::{Call, CallerHistory, Quality, Scorer};

pub struct FilesystemScorer;

impl Scorer for FilesystemScorer {
    fn score(_call: &Call, _host: &impl CallerHistory) -> Result<Quality, String> {
        let secrets = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
        Ok(Quality::new(secrets.len().min(100) as u8))
    }
}

guest_sdk::export_scorer!(FilesystemScorer);

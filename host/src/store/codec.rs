//! How records are written: one format-version byte, then JSON. The version
//! lets a later release read what an earlier one wrote.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// The format of every value this release writes.
pub const FORMAT_VERSION: u8 = 1;

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut bytes = vec![FORMAT_VERSION];
    serde_json::to_writer(&mut bytes, value).map_err(|e| StoreError::Encode(e.to_string()))?;
    Ok(bytes)
}

pub fn decode<T: DeserializeOwned>(tree: &str, bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        tree: tree.to_owned(),
        reason,
    };
    match bytes.split_first() {
        Some((&FORMAT_VERSION, json)) => {
            serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))
        }
        Some((other, _)) => Err(corrupt(format!("unknown format version {other}"))),
        None => Err(corrupt("empty value".to_owned())),
    }
}

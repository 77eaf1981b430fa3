//! The example geo-history scorer with one rule more, as a marketer's next
//! version would be: callers from area code 212 score 20 lower. Run as a
//! shadow beside the example, it agrees on every other call.

use geo_history_scorer::GeoHistoryScorer;
use guest_sdk::{Call, CallerHistory, Quality, Scorer};

/// The area code the new rule is about.
const AREA_CODE: &str = "212";
const PENALTY: u8 = 20;

pub struct AreaCodeScorer;

impl Scorer for AreaCodeScorer {
    fn score(call: &Call, host: &impl CallerHistory) -> Result<Quality, String> {
        let mut quality = GeoHistoryScorer::score(call, host)?;
        if call.caller_geography.area_code == AREA_CODE {
            quality.score = quality.score.saturating_sub(PENALTY);
            quality.tags.push("area-212".to_owned());
        }
        Ok(quality)
    }
}

// Exported for wasm alone: a native build of the workspace's tests links the
// example's export too (features unify there), and a library has one `score`.
#[cfg(target_arch = "wasm32")]
guest_sdk::export_scorer!(AreaCodeScorer);

//! Real-time bids, sans-IO: the bid request a bidder's endpoint is POSTed
//! for a call, and what its answer means. The shell
//! (`runtime/real_time_bids.rs`) sends the requests in parallel and cuts
//! them off at the auction's deadline; the format is in `docs/real-time-bids.md`.
//!
//! Modelled on the pings buyers already answer for Ringba- and
//! Retreaver-style markets: a bid amount, the target to ring, an expiry, or a
//! reject reason.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{CallTime, Geography, Offer};

/// The JSON body POSTed to a bidder's `rtb_url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidRequest {
    pub call_id: String,
    pub campaign_id: String,
    /// The bidder being asked (one endpoint may serve several bidders).
    pub bidder_id: String,
    pub quality: u8,
    pub quality_tags: Vec<String>,
    /// Where the caller is, never who: no number.
    pub caller: Geography,
    pub time: CallTime,
    /// The attribution keys the marketer shares with bidders.
    pub attribution: BTreeMap<String, String>,
    /// Bids below this are dropped (micros of the campaign's currency).
    pub floor_price_micros: u64,
    /// Milliseconds the bidder has to answer, counted from the auction's start.
    pub deadline_ms: u32,
}

impl BidRequest {
    pub fn new(offer: &Offer, bidder_id: &str, floor_price_micros: u64, deadline_ms: u32) -> Self {
        BidRequest {
            call_id: offer.call_id.clone(),
            campaign_id: offer.campaign_id.clone(),
            bidder_id: bidder_id.to_owned(),
            quality: offer.quality.score,
            quality_tags: offer.quality.tags.clone(),
            caller: offer.caller_geography.clone(),
            time: offer.time.clone(),
            attribution: offer.attribution.iter().cloned().collect(),
            floor_price_micros,
            deadline_ms,
        }
    }
}

/// The JSON a bidder answers with (`200`); `204 No Content` declines too.
/// Unknown fields are ignored, so bidders can send what other markets ask.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidResponse {
    /// What the bidder pays for the call; absent or 0 with a
    /// `reject_reason` declines it.
    #[serde(default)]
    pub bid_amount_micros: Option<u64>,
    /// One of the bidder's targets; absent = its oldest target.
    #[serde(default)]
    pub target_id: Option<String>,
    /// Minimum billable duration; absent = 90 s.
    #[serde(default)]
    pub min_duration_s: Option<u32>,
    /// How long the bid stands, seconds; a bid of 0 s has expired.
    #[serde(default)]
    pub expires_in_s: Option<u32>,
    /// Why the bidder declines (recorded in the call's trace).
    #[serde(default)]
    pub reject_reason: Option<String>,
}

/// What a bidder's answer amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Bid {
        amount_micros: u64,
        target_id: Option<String>,
        min_duration_s: Option<u32>,
    },
    Declined(String),
}

/// Why an answer was not used; each is counted per bidder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("no answer within the auction's deadline")]
    Late,
    #[error("malformed answer: {0}")]
    Malformed(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("endpoint unreachable: {0}")]
    Unreachable(String),
}

impl Failure {
    /// The trace's reason code and the metric's `result` label.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Late => "rtb_late",
            Failure::Malformed(_) => "rtb_malformed",
            Failure::Status(_) | Failure::Unreachable(_) => "rtb_error",
        }
    }
}

/// Bytes of an answer at most: a bid is a few hundred.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Reads a bidder's HTTP answer.
pub fn parse_answer(status: u16, body: &[u8]) -> Result<Answer, Failure> {
    match status {
        204 => return Ok(Answer::Declined("no content".to_owned())),
        200 => {}
        other => return Err(Failure::Status(other)),
    }
    if body.len() > MAX_ANSWER_BYTES {
        return Err(Failure::Malformed(format!(
            "{} bytes, more than {MAX_ANSWER_BYTES}",
            body.len()
        )));
    }
    let response: BidResponse =
        serde_json::from_slice(body).map_err(|e| Failure::Malformed(e.to_string()))?;
    if response.expires_in_s == Some(0) {
        return Err(Failure::Malformed(
            "the bid expired (expires_in_s 0)".to_owned(),
        ));
    }
    match (response.bid_amount_micros, response.reject_reason) {
        (Some(amount), _) if amount > 0 => Ok(Answer::Bid {
            amount_micros: amount,
            target_id: response.target_id,
            min_duration_s: response.min_duration_s,
        }),
        (_, Some(reason)) => Ok(Answer::Declined(reason)),
        (Some(_), None) => Ok(Answer::Declined("zero bid".to_owned())),
        (None, None) => Err(Failure::Malformed(
            "neither bid_amount_micros nor reject_reason".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_bids_declines_or_failures() {
        let bid = br#"{"bid_amount_micros": 42000000, "target_id": "tgt_1", "expires_in_s": 30, "extra": 1}"#;
        assert_eq!(
            parse_answer(200, bid),
            Ok(Answer::Bid {
                amount_micros: 42_000_000,
                target_id: Some("tgt_1".to_owned()),
                min_duration_s: None
            })
        );
        assert_eq!(
            parse_answer(200, br#"{"reject_reason": "closed"}"#),
            Ok(Answer::Declined("closed".to_owned()))
        );
        assert_eq!(
            parse_answer(204, b""),
            Ok(Answer::Declined("no content".to_owned()))
        );
        assert_eq!(parse_answer(500, b"{}"), Err(Failure::Status(500)));
        for malformed in [
            &b"{\"bid_amount_micros\": "[..],
            b"{}",
            b"{\"bid_amount_micros\": -5}",
            b"{\"bid_amount_micros\": 5, \"expires_in_s\": 0}",
        ] {
            assert_eq!(
                parse_answer(200, malformed).map_err(|e| e.code()),
                Err("rtb_malformed"),
                "{}",
                String::from_utf8_lossy(malformed)
            );
        }
    }
}

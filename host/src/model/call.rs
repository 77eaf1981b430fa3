//! A call as policies see it: its facts, its quality, the offer bidders
//! get, the bids a selector ranks, and the caller's history.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Geography {
    pub country: String,
    pub area_code: String,
    pub region: String,
    pub time_zone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallTime {
    pub unix_seconds: i64,
    /// 0 = Monday … 6 = Sunday, in the caller's local time.
    pub local_weekday: u8,
    pub local_hour: u8,
    #[serde(default)]
    pub local_minute: u8,
}

/// An inbound call as scorers and selectors see it. In a sample every field
/// may be left out (empty, zero, or the epoch's Thursday 00:00).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallFacts {
    pub id: String,
    pub campaign_id: String,
    pub caller: String,
    pub called: String,
    #[serde(default)]
    pub caller_geography: Geography,
    pub time: CallTime,
    #[serde(default)]
    pub headers: Vec<Header>,
    /// Attribution attributes in the order the DNI session gave them, as an
    /// object (`{"utm_source": "google"}`); see [`attribution`].
    #[serde(default, with = "attribution")]
    pub attribution: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quality {
    pub score: u8,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A call offered to a bidder strategy module: no caller number, by
/// construction. In a sample every field may be left out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Offer {
    pub call_id: String,
    pub campaign_id: String,
    pub quality: Quality,
    #[serde(default)]
    pub caller_geography: Geography,
    pub time: CallTime,
    #[serde(default, with = "attribution")]
    pub attribution: Vec<(String, String)>,
}

/// Attribution on the wire: an object of names to values, written in the
/// order the DNI session gave them. A list of `[name, value]` pairs is read
/// too, the shape samples and call records had before, so old samples and
/// records still load.
pub mod attribution {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(pairs.iter().map(|(name, value)| (name, value)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Pairs(Vec<(String, String)>),
            Object(serde_json::Map<String, serde_json::Value>),
        }
        match Shape::deserialize(d)? {
            Shape::Pairs(pairs) => Ok(pairs),
            Shape::Object(members) => members
                .into_iter()
                .map(|(name, value)| match value {
                    serde_json::Value::String(value) => Ok((name, value)),
                    other => Err(serde::de::Error::custom(format!(
                        "attribution `{name}` must be a string, not {other}"
                    ))),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BidDecision {
    pub amount_micros: u64,
    #[serde(default)]
    pub target_id: Option<String>,
    /// `min_duration_s` in JSON, as in the API and real-time bids;
    /// `min_duration_seconds`, the WIT's name, is read too.
    #[serde(default, rename = "min_duration_s", alias = "min_duration_seconds")]
    pub min_duration_seconds: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetStats {
    pub offered: u32,
    pub answered: u32,
    pub average_duration_seconds: u32,
}

/// An eligible bid as the selector sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BidCandidate {
    pub id: String,
    pub bidder_id: String,
    pub target_id: String,
    pub amount_micros: u64,
    #[serde(default)]
    pub min_quality: u8,
    /// `min_duration_s` in JSON, as in the API and real-time bids;
    /// `min_duration_seconds`, the WIT's name, is read too.
    #[serde(default, rename = "min_duration_s", alias = "min_duration_seconds")]
    pub min_duration_seconds: u32,
    #[serde(default)]
    pub target_stats: TargetStats,
}

/// What the host knows of a caller before the current call: what the
/// store keeps per caller, and what the `caller-history` import answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CallerHistory {
    pub calls_seen: u32,
    pub last_seen_unix_seconds: Option<i64>,
    pub conversions: u32,
}

//! Host-side types of what policies read and return. WIT-generated types stay in
//! `bindings`; the rest of the host, the CLI and the API speak these.

use serde::{Deserialize, Serialize};

/// The three kinds of policy, one per WIT world.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum World {
    Scorer,
    Bidder,
    Selector,
}

impl World {
    pub const ALL: [World; 3] = [World::Scorer, World::Bidder, World::Selector];

    pub fn as_str(self) -> &'static str {
        match self {
            World::Scorer => "scorer",
            World::Bidder => "bidder",
            World::Selector => "selector",
        }
    }

    /// The function the world exports, named as in `wit/policy.wit`.
    pub fn export_name(self) -> &'static str {
        match self {
            World::Scorer => "score",
            World::Bidder => "bid",
            World::Selector => "select",
        }
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for World {
    type Err = UnknownWorld;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        World::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| UnknownWorld(s.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown world `{0}` (expected scorer, bidder or selector)")]
pub struct UnknownWorld(pub String);

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

/// What the host knows of a caller before the current call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallerHistory {
    pub calls_seen: u32,
    pub last_seen_unix_seconds: Option<i64>,
    pub conversions: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One structured line a guest logged during an invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestLog {
    pub level: LogLevel,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

impl GuestLog {
    /// Bytes of its text: the message, field names and values. What the
    /// log bounds count.
    pub fn bytes(&self) -> usize {
        self.message.len()
            + self
                .fields
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }
}

//! What policies read and return: plain Rust mirrors of `wit/policy.wit`.

/// One SIP header of the inbound INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// One attribution attribute of the visitor session (DNI), e.g. `source`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attribute {
    pub key: String,
    pub value: String,
}

/// Geography derived from a phone number; never the number itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Geography {
    /// ISO 3166-1 alpha-2, e.g. `US`; empty when unknown.
    pub country: String,
    /// North American area code (three digits); empty outside the NANP.
    pub area_code: String,
    /// State or province, e.g. `CA`; empty when unknown.
    pub region: String,
    /// IANA time zone, e.g. `America/Los_Angeles`; empty when unknown.
    pub time_zone: String,
}

/// When the call arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallTime {
    /// Seconds since the Unix epoch, UTC.
    pub unix_seconds: i64,
    /// 0 = Monday … 6 = Sunday, caller's local time.
    pub local_weekday: u8,
    /// 0–23, caller's local time.
    pub local_hour: u8,
    /// 0–59, caller's local time.
    pub local_minute: u8,
}

/// An inbound call, as scorers and selectors see it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Call {
    pub id: String,
    pub campaign_id: String,
    /// The caller's number in E.164, or the raw user part for anonymous callers.
    pub caller: String,
    /// The dialled number in E.164.
    pub called: String,
    pub caller_geography: Geography,
    pub time: CallTime,
    pub headers: Vec<Header>,
    pub attribution: Vec<Attribute>,
}

impl Call {
    /// The first header called `name` (ASCII case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The attribution attribute `key`, if the DNI session had it.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        find_attribute(&self.attribution, key)
    }
}

fn find_attribute<'a>(attributes: &'a [Attribute], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .map(|a| a.value.as_str())
}

/// A scorer's verdict: the call quality indicator.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Quality {
    /// 0–100; the host rejects anything above 100.
    pub score: u8,
    /// Short machine-readable reasons, at most 16 of at most 64 bytes each.
    pub tags: Vec<String>,
}

impl Quality {
    /// A verdict of `score`, clamped to 0–100, with no tags.
    pub fn new(score: u8) -> Self {
        Quality {
            score: score.min(100),
            tags: Vec::new(),
        }
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }
}

/// A call offered to a bidder: no caller number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Offer {
    pub call_id: String,
    pub campaign_id: String,
    pub quality: Quality,
    pub caller_geography: Geography,
    pub time: CallTime,
    /// Only the keys the marketer shares with bidders.
    pub attribution: Vec<Attribute>,
}

impl Offer {
    /// The shared attribution attribute `key`, if any.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        find_attribute(&self.attribution, key)
    }
}

/// A bid on an offer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BidDecision {
    /// Payout in micros of the campaign's currency (1 USD = 1,000,000).
    pub amount_micros: u64,
    /// Which of the bidder's targets rings; `None` = the first.
    pub target_id: Option<String>,
    /// Minimum billable duration; `None` = the bidder's default.
    pub min_duration_seconds: Option<u32>,
}

impl BidDecision {
    pub fn new(amount_micros: u64) -> Self {
        BidDecision {
            amount_micros,
            ..Default::default()
        }
    }
}

/// How a bid's target has answered lately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetStats {
    pub offered: u32,
    pub answered: u32,
    pub average_duration_seconds: u32,
}

/// An eligible bid, as the selector sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bid {
    pub id: String,
    pub bidder_id: String,
    pub target_id: String,
    pub amount_micros: u64,
    pub min_quality: u8,
    pub min_duration_seconds: u32,
    pub target_stats: TargetStats,
}

/// The current caller's past with the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct History {
    pub calls_seen: u32,
    pub last_seen_unix_seconds: Option<i64>,
    pub conversions: u32,
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Why a key-value write was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    /// Key over 256 bytes or value over 64 KiB.
    TooLarge,
    /// The policy already holds 1,000 keys.
    QuotaExceeded,
    Other(String),
}

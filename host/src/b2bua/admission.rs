//! Which sources may start calls, and how fast (sans-IO: time comes in).
//! An operator lists its carriers' address ranges in `sip_trusted_sources`:
//! an INVITE from anywhere else is answered `403`. Each source address has
//! an INVITE rate, a token bucket; past it, `503` with `Retry-After`, so a
//! flooding host costs its own calls, not everyone's.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Instant;

use serde::Deserialize;

use crate::rate::Bucket;

/// An address range, `203.0.113.0/24` or `2001:db8::/32` (a bare address is
/// a range of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an address range such as 203.0.113.0/24")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || CidrError(text.chars().take(64).collect());
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().map_err(|_| error())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(error)?,
            None => bits,
        };
        Ok(Cidr { network, prefix })
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let (network, address, bits) = match (self.network, address) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                (u128::from(n.to_bits()), u128::from(a.to_bits()), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => (n.to_bits(), a.to_bits(), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (network >> shift) == (address >> shift)
    }
}

/// INVITEs one source may send per second, sustained, and in a burst.
pub use crate::rate::Rate as InviteRate;

/// Sources tracked at most; past it, the oldest buckets are forgotten.
const MAX_SOURCES: usize = 65_536;

/// What becomes of a new INVITE from a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    /// Not in `sip_trusted_sources`: `403`.
    Untrusted,
    /// Past its INVITE rate: `503` with `Retry-After`.
    TooFast,
}

#[derive(Debug)]
pub struct Admission {
    trusted: Vec<Cidr>,
    rate: InviteRate,
    buckets: HashMap<IpAddr, Bucket>,
}

impl Admission {
    /// `trusted` empty: every source may call.
    pub fn new(trusted: Vec<Cidr>, rate: InviteRate) -> Self {
        Admission {
            trusted,
            rate,
            buckets: HashMap::new(),
        }
    }

    /// Decides on a new INVITE from `source` at `now`.
    pub fn check(&mut self, now: Instant, source: IpAddr) -> Verdict {
        if !self.trusted.is_empty() && !self.trusted.iter().any(|c| c.contains(source)) {
            return Verdict::Untrusted;
        }
        if self.buckets.len() >= MAX_SOURCES && !self.buckets.contains_key(&source) {
            let oldest = self
                .buckets
                .iter()
                .min_by_key(|(_, bucket)| bucket.last_taken())
                .map(|(ip, _)| *ip);
            if let Some(ip) = oldest {
                self.buckets.remove(&ip);
            }
        }
        let rate = self.rate;
        let bucket = self
            .buckets
            .entry(source)
            .or_insert_with(|| Bucket::full(&rate, now));
        if bucket.take(&rate, now) {
            Verdict::Admit
        } else {
            Verdict::TooFast
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ranges_parse_and_hold_their_addresses() {
        let carrier: Cidr = "203.0.113.0/24".parse().unwrap();
        assert!(carrier.contains("203.0.113.77".parse().unwrap()));
        assert!(!carrier.contains("203.0.114.1".parse().unwrap()));
        assert!(
            carrier.contains("::ffff:203.0.113.9".parse().unwrap()),
            "v4-mapped"
        );
        let one: Cidr = "192.0.2.1".parse().unwrap();
        assert!(one.contains("192.0.2.1".parse().unwrap()));
        assert!(!one.contains("192.0.2.2".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("198.51.100.1".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        for bad in ["203.0.113.0/33", "carrier", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn untrusted_sources_are_refused_and_each_source_has_its_rate() {
        let now = crate::clock::now();
        let mut admission = Admission::new(
            vec!["10.0.0.0/8".parse().unwrap()],
            InviteRate {
                per_second: 10.0,
                burst: 2.0,
            },
        );
        let carrier: IpAddr = "10.1.2.3".parse().unwrap();
        let other: IpAddr = "10.9.9.9".parse().unwrap();
        assert_eq!(
            admission.check(now, "192.0.2.1".parse().unwrap()),
            Verdict::Untrusted
        );
        assert_eq!(admission.check(now, carrier), Verdict::Admit);
        assert_eq!(admission.check(now, carrier), Verdict::Admit);
        assert_eq!(admission.check(now, carrier), Verdict::TooFast);
        assert_eq!(
            admission.check(now, other),
            Verdict::Admit,
            "a rate per source"
        );
        let later = now + Duration::from_millis(100);
        assert_eq!(admission.check(later, carrier), Verdict::Admit, "refilled");
    }
}

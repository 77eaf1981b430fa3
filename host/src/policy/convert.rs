//! Conversions between the host model and the WIT-generated types, and checks
//! of what a guest returns against the contract.

use super::bindings::types as wit;
use super::invoke::PolicyFailure;
use crate::model::{
    BidCandidate, BidDecision, CallFacts, CallTime, Geography, Header, Offer, Quality,
};

/// Most tags a scorer may return; each at most [`MAX_TAG_BYTES`] of
/// [`is_tag_char`]s.
pub const MAX_TAGS: usize = 16;
pub const MAX_TAG_BYTES: usize = 64;

/// What a tag may be made of. Tags are the marketer's message to bidders:
/// they reach every bidder's module and endpoint verbatim, so they are
/// short tokens, never text that could pass for markup, a header or a line.
pub fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '=' | '/' | '+')
}
/// Longest id a guest may return (bid target ids).
const MAX_ID_BYTES: usize = 128;

fn geography(g: &Geography) -> wit::Geography {
    wit::Geography {
        country: g.country.clone(),
        area_code: g.area_code.clone(),
        region: g.region.clone(),
        time_zone: g.time_zone.clone(),
    }
}

fn call_time(t: &CallTime) -> wit::CallTime {
    wit::CallTime {
        unix_seconds: t.unix_seconds,
        local_weekday: t.local_weekday,
        local_hour: t.local_hour,
        local_minute: t.local_minute,
    }
}

fn attributes(pairs: &[(String, String)]) -> Vec<wit::Attribute> {
    pairs
        .iter()
        .map(|(key, value)| wit::Attribute {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

pub(crate) fn call(c: &CallFacts) -> wit::Call {
    wit::Call {
        id: c.id.clone(),
        campaign_id: c.campaign_id.clone(),
        caller: c.caller.clone(),
        called: c.called.clone(),
        caller_geography: geography(&c.caller_geography),
        time: call_time(&c.time),
        headers: c
            .headers
            .iter()
            .map(|Header { name, value }| wit::Header {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        attribution: attributes(&c.attribution),
    }
}

pub(crate) fn quality(q: &Quality) -> wit::Quality {
    wit::Quality {
        score: q.score,
        tags: q.tags.clone(),
    }
}

pub(crate) fn offer(o: &Offer) -> wit::Offer {
    wit::Offer {
        call_id: o.call_id.clone(),
        campaign_id: o.campaign_id.clone(),
        quality: quality(&o.quality),
        caller_geography: geography(&o.caller_geography),
        time: call_time(&o.time),
        attribution: attributes(&o.attribution),
    }
}

pub(crate) fn bid(b: &BidCandidate) -> wit::Bid {
    wit::Bid {
        id: b.id.clone(),
        bidder_id: b.bidder_id.clone(),
        target_id: b.target_id.clone(),
        amount_micros: b.amount_micros,
        min_quality: b.min_quality,
        min_duration_seconds: b.min_duration_seconds,
        target_stats: wit::TargetStats {
            offered: b.target_stats.offered,
            answered: b.target_stats.answered,
            average_duration_seconds: b.target_stats.average_duration_seconds,
        },
    }
}

/// A scorer's verdict, checked: score within 0–100, tags bounded.
pub(crate) fn checked_quality(q: wit::Quality) -> Result<Quality, PolicyFailure> {
    if q.score > 100 {
        return Err(PolicyFailure::BadOutput(format!(
            "score {} is above 100",
            q.score
        )));
    }
    if q.tags.len() > MAX_TAGS {
        return Err(PolicyFailure::BadOutput(format!(
            "{} tags, at most {MAX_TAGS} allowed",
            q.tags.len()
        )));
    }
    if let Some(tag) = q
        .tags
        .iter()
        .find(|t| t.is_empty() || t.len() > MAX_TAG_BYTES)
    {
        return Err(PolicyFailure::BadOutput(format!(
            "tag of {} bytes, tags must be 1 to {MAX_TAG_BYTES} bytes",
            tag.len()
        )));
    }
    if let Some(tag) = q.tags.iter().find(|t| !t.chars().all(is_tag_char)) {
        return Err(PolicyFailure::BadOutput(format!(
            "tag {tag:?} has a character outside A-Z a-z 0-9 - _ . : = / +"
        )));
    }
    Ok(Quality {
        score: q.score,
        tags: q.tags,
    })
}

pub(crate) fn checked_bid(
    b: Option<wit::BidDecision>,
) -> Result<Option<BidDecision>, PolicyFailure> {
    let Some(b) = b else { return Ok(None) };
    if let Some(target) = &b.target_id
        && (target.is_empty() || target.len() > MAX_ID_BYTES)
    {
        return Err(PolicyFailure::BadOutput(format!(
            "target id of {} bytes, must be 1 to {MAX_ID_BYTES}",
            target.len()
        )));
    }
    Ok(Some(BidDecision {
        amount_micros: b.amount_micros,
        target_id: b.target_id,
        min_duration_seconds: b.min_duration_seconds,
    }))
}

/// A selector's ring order, checked: every index in range and used once.
pub(crate) fn checked_order(order: Vec<u32>, bids: usize) -> Result<Vec<u32>, PolicyFailure> {
    let mut seen = vec![false; bids];
    for &index in &order {
        let slot = usize::try_from(index)
            .ok()
            .and_then(|i| seen.get_mut(i))
            .ok_or_else(|| {
                PolicyFailure::BadOutput(format!("index {index} is out of range for {bids} bids"))
            })?;
        if std::mem::replace(slot, true) {
            return Err(PolicyFailure::BadOutput(format!(
                "index {index} appears twice"
            )));
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(tags: &[&str]) -> Result<Quality, PolicyFailure> {
        checked_quality(wit::Quality {
            score: 50,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        })
    }

    #[test]
    fn tags_reach_bidders_only_as_short_tokens() {
        assert!(verdict(&["repeat-caller", "state:CA", "hour=14", "src/google+ads_1.0"]).is_ok());
        for bad in [
            "<script>",
            "two words",
            "line\r\nX-Evil: 1",
            "caf\u{e9}",
            "a,b",
            "\0",
        ] {
            assert!(
                matches!(verdict(&[bad]), Err(PolicyFailure::BadOutput(_))),
                "{bad:?} passed"
            );
        }
    }
}

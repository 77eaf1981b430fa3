//! Call records, kept in arrival order, and the caller-history index.

use sled::transaction::Transactional;

use super::{CallFilter, CallPage, CallRecord, CallerStats, Store, StoreError, call_key, codec};

impl Store {
    /// Stores a finished call and updates its caller's history, together.
    pub fn record_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        let key = call_key(record);
        let bytes = codec::encode(record)?;
        let mut stats = self.caller_stats(&record.caller)?;
        stats.calls_seen = stats.calls_seen.saturating_add(1);
        let seen = record.received_at_ms.div_euclid(1000);
        stats.last_seen_unix_seconds =
            Some(stats.last_seen_unix_seconds.map_or(seen, |s| s.max(seen)));
        if record.billable {
            stats.conversions = stats.conversions.saturating_add(1);
        }
        let stats_bytes = codec::encode(&stats)?;
        (
            &self.calls.tree,
            &self.call_index,
            &self.caller_history.tree,
        )
            .transaction(|(calls, index, history)| {
                calls.insert(key.as_bytes(), bytes.clone())?;
                index.insert(record.id.as_bytes(), key.as_bytes())?;
                history.insert(record.caller.as_bytes(), stats_bytes.clone())?;
                Ok(())
            })?;
        Ok(())
    }

    pub fn call(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        let Some(key) = self.call_index.get(id.as_bytes())? else {
            return Ok(None);
        };
        self.calls.get(&String::from_utf8_lossy(&key))
    }

    /// Calls matching `filter` and `visible`, oldest first, `limit` at most,
    /// from `cursor` (the `next_cursor` of the previous page).
    pub fn calls(
        &self,
        filter: &CallFilter,
        visible: impl Fn(&CallRecord) -> bool,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<CallPage, StoreError> {
        let start = match (cursor, filter.since_ms) {
            (Some(cursor), _) => format!("{cursor}\u{0}"),
            (None, Some(since)) => format!("{:016x}", since.max(0)),
            (None, None) => String::new(),
        };
        let mut calls = Vec::new();
        let mut last_key = None;
        let mut more = false;
        for entry in self.calls.tree.range(start.as_bytes()..) {
            let (key, bytes) = entry?;
            let record: CallRecord = codec::decode(self.calls.name, &bytes)?;
            if filter
                .until_ms
                .is_some_and(|until| record.received_at_ms >= until)
            {
                break;
            }
            let matches = filter
                .campaign_id
                .as_ref()
                .is_none_or(|c| &record.campaign_id == c)
                && filter.outcome.is_none_or(|o| record.outcome == o)
                && visible(&record);
            if !matches {
                continue;
            }
            if calls.len() == limit {
                more = true;
                break;
            }
            last_key = Some(String::from_utf8_lossy(&key).into_owned());
            calls.push(record);
        }
        Ok(CallPage {
            calls,
            next_cursor: if more { last_key } else { None },
        })
    }

    /// The caller's history before any call not yet recorded.
    pub fn caller_stats(&self, caller: &str) -> Result<CallerStats, StoreError> {
        Ok(self.caller_history.get(caller)?.unwrap_or_default())
    }
}

//! Call records, kept in arrival order, and the caller-history index.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use sled::transaction::Transactional;

use super::{CallFilter, CallPage, Store, StoreError, call_key, codec};

use crate::model::{CallRecord, CallerHistory};

impl Store {
    /// Stores a finished call and updates its caller's history, together.
    pub fn record_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        self.record_calls(std::slice::from_ref(record))
    }

    /// Stores finished calls and their callers' histories in one transaction
    /// (the call server records in batches). Callers are read and written by
    /// one recorder at a time, so a history never loses a call.
    pub fn record_calls(&self, records: &[CallRecord]) -> Result<(), StoreError> {
        let mut stats: HashMap<&str, CallerHistory> = HashMap::new();
        let mut rows = Vec::with_capacity(records.len());
        for record in records {
            let caller = match stats.entry(record.caller.as_str()) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => entry.insert(self.caller_stats(&record.caller)?),
            };
            caller.calls_seen = caller.calls_seen.saturating_add(1);
            let seen = record.received_at_ms.div_euclid(1000);
            caller.last_seen_unix_seconds =
                Some(caller.last_seen_unix_seconds.map_or(seen, |s| s.max(seen)));
            if record.billable {
                caller.conversions = caller.conversions.saturating_add(1);
            }
            rows.push((call_key(record), codec::encode(record)?, record.id.as_str()));
        }
        let stats = stats
            .into_iter()
            .map(|(caller, s)| Ok((caller, codec::encode(&s)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        (
            &self.calls.tree,
            &self.call_index,
            &self.caller_history.tree,
        )
            .transaction(|(calls, index, history)| {
                for (key, bytes, id) in &rows {
                    calls.insert(key.as_bytes(), bytes.clone())?;
                    index.insert(id.as_bytes(), key.as_bytes())?;
                }
                for (caller, bytes) in &stats {
                    history.insert(caller.as_bytes(), bytes.clone())?;
                }
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
        self.calls_within(filter, visible, cursor, limit, usize::MAX)
    }

    /// As [`Store::calls`], the page also ending once its records hold
    /// `max_bytes` (as stored; at least one record): a listing's size is
    /// bounded whatever the records hold.
    pub fn calls_within(
        &self,
        filter: &CallFilter,
        visible: impl Fn(&CallRecord) -> bool,
        cursor: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<CallPage, StoreError> {
        let mut bytes_held = 0usize;
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
            if !(filter.admits(&record) && visible(&record)) {
                continue;
            }
            if calls.len() == limit || (!calls.is_empty() && bytes_held + bytes.len() > max_bytes) {
                more = true;
                break;
            }
            bytes_held += bytes.len();
            last_key = Some(String::from_utf8_lossy(&key).into_owned());
            calls.push(record);
        }
        Ok(CallPage {
            calls,
            next_cursor: if more { last_key } else { None },
        })
    }

    /// Calls received in `[since_ms, until_ms)`, whatever their campaign:
    /// counted from the keys, nothing decoded.
    pub fn calls_received_between(&self, since_ms: Option<i64>, until_ms: Option<i64>) -> usize {
        self.received_between(since_ms, until_ms).keys().count()
    }

    /// The records received in `[since_ms, until_ms)`, by key.
    fn received_between(&self, since_ms: Option<i64>, until_ms: Option<i64>) -> sled::Iter {
        let since = format!("{:016x}", since_ms.unwrap_or(0).max(0));
        match until_ms {
            Some(until) => self
                .calls
                .tree
                .range(since.as_bytes()..format!("{:016x}", until.max(0)).as_bytes()),
            None => self.calls.tree.range(since.as_bytes()..),
        }
    }

    /// The cursor after which the `n` newest calls matching `filter` and
    /// `visible` follow, for [`Store::calls`]; none when fewer match (they
    /// all follow from the start). Read newest first, so it costs the `n`
    /// calls, not the whole history.
    pub fn cursor_before_newest(
        &self,
        filter: &CallFilter,
        visible: impl Fn(&CallRecord) -> bool,
        n: usize,
    ) -> Result<Option<String>, StoreError> {
        let mut matched = 0usize;
        for entry in self
            .received_between(filter.since_ms, filter.until_ms)
            .rev()
        {
            let (key, bytes) = entry?;
            let record: CallRecord = codec::decode(self.calls.name, &bytes)?;
            if !(filter.admits(&record) && visible(&record)) {
                continue;
            }
            if matched == n {
                return Ok(Some(String::from_utf8_lossy(&key).into_owned()));
            }
            matched += 1;
        }
        Ok(None)
    }

    /// The caller's history before any call not yet recorded.
    pub fn caller_stats(&self, caller: &str) -> Result<CallerHistory, StoreError> {
        Ok(self.caller_history.get(caller)?.unwrap_or_default())
    }
}

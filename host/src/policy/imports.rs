//! The host functions policies import: `log`, `caller-history` and `kv`.
//! Each checks the invocation's deadline first, so host time counts too.

use super::bindings::{caller_history, kv, log, types};
use super::invoke::{
    InvocationState, MAX_LOG_BYTES, MAX_LOG_FIELDS, MAX_LOG_LINES, MAX_LOG_TEXT, guest_text,
};
use crate::model::{GuestLog, KvRefusal, LogLevel, MAX_KEY_BYTES, MAX_VALUE_BYTES};

impl types::Host for InvocationState {}

impl log::Host for InvocationState {
    fn emit(
        &mut self,
        level: log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        self.check_deadline()?;
        if self.logs.len() >= MAX_LOG_LINES || self.log_bytes >= MAX_LOG_BYTES {
            self.logs_dropped = self.logs_dropped.saturating_add(1);
            return Ok(());
        }
        let fields: Vec<(String, String)> = fields
            .into_iter()
            .take(MAX_LOG_FIELDS)
            .map(|(k, v)| (guest_text(k, 64), guest_text(v, MAX_LOG_TEXT)))
            .collect();
        let line = GuestLog {
            level: match level {
                log::Level::Trace => LogLevel::Trace,
                log::Level::Debug => LogLevel::Debug,
                log::Level::Info => LogLevel::Info,
                log::Level::Warn => LogLevel::Warn,
                log::Level::Error => LogLevel::Error,
            },
            message: guest_text(message, MAX_LOG_TEXT),
            fields,
        };
        if self.log_bytes + line.bytes() > MAX_LOG_BYTES {
            self.logs_dropped = self.logs_dropped.saturating_add(1);
            return Ok(());
        }
        self.log_bytes += line.bytes();
        self.logs.push(line);
        Ok(())
    }
}

impl caller_history::Host for InvocationState {
    fn lookup(&mut self) -> wasmtime::Result<caller_history::History> {
        self.check_deadline()?;
        Ok(caller_history::History {
            calls_seen: self.history.calls_seen,
            last_seen_unix_seconds: self.history.last_seen_unix_seconds,
            conversions: self.history.conversions,
        })
    }
}

impl kv::Host for InvocationState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        self.check_deadline()?;
        Ok(self.kv.get(&self.kv_namespace, &key))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), kv::Error>> {
        self.check_deadline()?;
        if key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
            return Ok(Err(kv::Error::TooLarge));
        }
        let written = self.kv.set(&self.kv_namespace, &key, &value);
        self.check_deadline()?;
        Ok(written.map_err(|refusal| match refusal {
            KvRefusal::TooLarge => kv::Error::TooLarge,
            KvRefusal::QuotaExceeded => kv::Error::QuotaExceeded,
            KvRefusal::Other(reason) => kv::Error::Other(reason),
        }))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.check_deadline()?;
        self.kv.delete(&self.kv_namespace, &key);
        Ok(())
    }
}

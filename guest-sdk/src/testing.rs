//! A host for native unit tests of policy logic: set the caller's history,
//! read back what the policy logged and stored.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::host::{CallerHistory, Host};
use crate::types::{History, KvError, Level};

/// One line a policy logged: level, message, fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedLine {
    pub level: Level,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

/// An in-memory [`Host`]; `logs` and `kv` are public so tests can assert on them.
#[derive(Debug, Default)]
pub struct TestHost {
    pub history: History,
    pub logs: RefCell<Vec<LoggedLine>>,
    pub kv: RefCell<BTreeMap<String, Vec<u8>>>,
}

impl TestHost {
    pub fn with_history(history: History) -> Self {
        TestHost {
            history,
            ..Default::default()
        }
    }
}

impl Host for TestHost {
    fn log(&self, level: Level, message: &str, fields: &[(&str, &str)]) {
        let fields = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.logs.borrow_mut().push(LoggedLine {
            level,
            message: message.to_owned(),
            fields,
        });
    }

    fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        self.kv.borrow().get(key).cloned()
    }

    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        if key.len() > 256 || value.len() > 64 << 10 {
            return Err(KvError::TooLarge);
        }
        self.kv.borrow_mut().insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn kv_delete(&self, key: &str) {
        self.kv.borrow_mut().remove(key);
    }
}

impl CallerHistory for TestHost {
    fn caller_history(&self) -> History {
        self.history
    }
}

//! Budgets on the connections the node holds, in all and per source, one
//! budget per listener kind: a flood of idle TCP connections to the SIP
//! port takes SIP's budget, never the file descriptors the HTTP API needs
//! (and the other way round), and one source never takes a whole budget.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Connections one listener kind may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub total: usize,
    pub per_source: usize,
}

/// TCP connections to the SIP listeners (carriers keep a few each).
pub const SIP_TCP: Limits = Limits {
    total: 4096,
    per_source: 256,
};

/// Connections to the HTTP API.
pub const HTTP: Limits = Limits {
    total: 512,
    per_source: 64,
};

/// What a listener kind holds now.
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// One admitted connection's place; dropping it gives the place back.
#[derive(Debug)]
pub struct Ticket {
    budget: Arc<Budget>,
    source: IpAddr,
}

impl Budget {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Budget {
            limits,
            held: Mutex::new(Held::default()),
        })
    }

    /// A place for a connection from `source`, if the budget has one.
    pub fn admit(self: &Arc<Self>, source: IpAddr) -> Option<Ticket> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let from_source = held.by_source.get(&source).copied().unwrap_or(0);
        if held.total >= self.limits.total || from_source >= self.limits.per_source {
            return None;
        }
        held.total += 1;
        held.by_source.insert(source, from_source + 1);
        Some(Ticket {
            budget: self.clone(),
            source,
        })
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut held = self.budget.held.lock().unwrap_or_else(|p| p.into_inner());
        held.total = held.total.saturating_sub(1);
        if let Some(count) = held.by_source.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                held.by_source.remove(&self.source);
            }
        }
    }
}

/// Raises this process's open-file limit to the most it may have: the
/// budgets above, the store's files and the sockets all fit under it.
pub fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(%error, "cannot raise the open-file limit");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_holds_its_total_and_per_source_and_gives_places_back() {
        let budget = Budget::new(Limits {
            total: 3,
            per_source: 2,
        });
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let first = budget.admit(a).expect("room");
        let _second = budget.admit(a).expect("room");
        assert!(budget.admit(a).is_none(), "one source, two places");
        let _third = budget.admit(b).expect("room for another source");
        assert!(budget.admit(b).is_none(), "three in all");
        drop(first);
        let again = budget.admit(a);
        assert!(again.is_some(), "a closed connection's place is free");
        assert_eq!(budget.held(), 3);
    }
}

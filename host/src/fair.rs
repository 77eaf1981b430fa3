//! Turns across tenants, sans-IO: work queued per tenant and handed out
//! round-robin, with a cap on how much of one tenant runs at once, so that
//! a tenant with slow or many jobs waits behind itself and not others. The
//! policy workers that route calls and the compile queue are both one.

use std::collections::{HashMap, VecDeque};

/// How much of one tenant's work may run, and wait, at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shares {
    pub running: usize,
    pub waiting: usize,
}

#[derive(Debug)]
struct Tenant<T> {
    waiting: VecDeque<T>,
    running: usize,
}

/// Jobs of type `T` by tenant.
#[derive(Debug)]
pub struct FairQueue<T> {
    shares: Shares,
    tenants: HashMap<String, Tenant<T>>,
    /// Tenants with work waiting, in the order of their next turn.
    turns: VecDeque<String>,
    waiting: usize,
}

/// A job refused because its tenant has `Shares::waiting` queued already.
#[derive(Debug, PartialEq, Eq)]
pub struct Full<T>(pub T);

impl<T> FairQueue<T> {
    pub fn new(shares: Shares) -> Self {
        FairQueue {
            shares: Shares {
                running: shares.running.max(1),
                waiting: shares.waiting,
            },
            tenants: HashMap::new(),
            turns: VecDeque::new(),
            waiting: 0,
        }
    }

    /// Queues `job` behind `tenant`'s others.
    pub fn push(&mut self, tenant: &str, job: T) -> Result<(), Full<T>> {
        let entry = self
            .tenants
            .entry(tenant.to_owned())
            .or_insert_with(|| Tenant {
                waiting: VecDeque::new(),
                running: 0,
            });
        if entry.waiting.len() >= self.shares.waiting {
            return Err(Full(job));
        }
        if entry.waiting.is_empty() {
            self.turns.push_back(tenant.to_owned());
        }
        entry.waiting.push_back(job);
        self.waiting += 1;
        Ok(())
    }

    /// The next job to run: the first tenant in turn that is below its
    /// running share gives its oldest job and goes to the back of the turn.
    /// Each job taken must be [`FairQueue::finish`]ed.
    pub fn take(&mut self) -> Option<(String, T)> {
        for _ in 0..self.turns.len() {
            let tenant = self.turns.pop_front()?;
            let Some(entry) = self.tenants.get_mut(&tenant) else {
                continue;
            };
            if entry.running >= self.shares.running {
                self.turns.push_back(tenant);
                continue;
            }
            let Some(job) = entry.waiting.pop_front() else {
                continue;
            };
            entry.running += 1;
            self.waiting -= 1;
            if !entry.waiting.is_empty() {
                self.turns.push_back(tenant.clone());
            }
            return Some((tenant, job));
        }
        None
    }

    /// `tenant`'s job taken before has ended.
    pub fn finish(&mut self, tenant: &str) {
        if let Some(entry) = self.tenants.get_mut(tenant) {
            entry.running = entry.running.saturating_sub(1);
            if entry.running == 0 && entry.waiting.is_empty() {
                self.tenants.remove(tenant);
            }
        }
    }

    /// Jobs queued and not yet taken, of all tenants.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Jobs queued and not yet taken, of `tenant`.
    pub fn waiting_of(&self, tenant: &str) -> usize {
        self.tenants.get(tenant).map_or(0, |t| t.waiting.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(running: usize, waiting: usize) -> FairQueue<u32> {
        FairQueue::new(Shares { running, waiting })
    }

    #[test]
    fn tenants_take_turns_whatever_one_of_them_has_queued() {
        let mut q = queue(10, 100);
        for job in 0..5 {
            q.push("flood", job).expect("room");
        }
        q.push("quiet", 100).expect("room");
        let order: Vec<(String, u32)> = std::iter::from_fn(|| q.take()).collect();
        let tenants: Vec<&str> = order.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            tenants,
            ["flood", "quiet", "flood", "flood", "flood", "flood"]
        );
        let flood: Vec<u32> = order
            .iter()
            .filter(|(t, _)| t == "flood")
            .map(|(_, j)| *j)
            .collect();
        assert_eq!(flood, [0, 1, 2, 3, 4], "one tenant's jobs keep their order");
    }

    #[test]
    fn a_tenant_at_its_running_share_waits_while_others_run() {
        let mut q = queue(2, 100);
        for job in 0..4 {
            q.push("slow", job).expect("room");
        }
        assert_eq!(q.take(), Some(("slow".to_owned(), 0)));
        assert_eq!(q.take(), Some(("slow".to_owned(), 1)));
        assert_eq!(q.take(), None, "slow holds its share");
        q.push("other", 7).expect("room");
        assert_eq!(q.take(), Some(("other".to_owned(), 7)));
        q.finish("slow");
        assert_eq!(q.take(), Some(("slow".to_owned(), 2)));
        assert_eq!(q.waiting(), 1);
        assert_eq!(q.waiting_of("slow"), 1);
    }

    #[test]
    fn a_tenant_past_its_waiting_share_is_refused_and_others_are_not() {
        let mut q = queue(1, 2);
        q.push("a", 1).expect("room");
        q.push("a", 2).expect("room");
        assert_eq!(q.push("a", 3), Err(Full(3)));
        q.push("b", 4).expect("b has its own share");
        let _ = q.take();
        q.push("a", 5).expect("a's turn freed a place");
    }

    #[test]
    fn a_finished_tenant_leaves_nothing_behind() {
        let mut q = queue(1, 1);
        q.push("a", 1).expect("room");
        let (tenant, _) = q.take().expect("a job");
        q.finish(&tenant);
        assert!(q.tenants.is_empty() && q.turns.is_empty());
        assert_eq!(q.take(), None);
    }
}

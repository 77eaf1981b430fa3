//! Turns across tenants, sans-IO: work queued per tenant and handed out
//! round-robin, with a cap on how much of one tenant runs at once, so that
//! a tenant with slow or many jobs waits behind itself and not others. The
//! policy workers that route calls and the compile queue are both one.
//! [`CpuShares`] bounds the CPU one tenant's policies take.

mod cpu_shares;

pub use cpu_shares::{ACTIVE_WINDOW, CpuShares, DEFAULT_TENANT_CPU_PERCENT};

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

    /// Whether [`FairQueue::take`] would give a job now.
    pub fn has_takeable(&self) -> bool {
        self.turns.iter().any(|tenant| {
            self.tenants
                .get(tenant)
                .is_some_and(|t| t.running < self.shares.running && !t.waiting.is_empty())
        })
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

/// An async gate over a [`FairQueue`]: `capacity` passes at once across
/// tenants, handed out in the tenants' turns. The compile queue and the
/// API's sample runs wait at one.
pub struct FairGate {
    state: std::sync::Mutex<GateState>,
}

struct GateState {
    queue: FairQueue<tokio::sync::oneshot::Sender<()>>,
    free: usize,
    /// Waiters of all tenants together, past which any is refused.
    max_waiting: usize,
}

/// Why [`FairGate::enter`] refused: the tenant's queue, or everyone's, is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many waiting")]
pub struct GateFull;

/// Held while the work it admits runs; dropping it lets the next in.
pub struct Pass<'a> {
    gate: &'a FairGate,
    tenant: String,
}

impl FairGate {
    pub fn new(capacity: usize, shares: Shares, max_waiting: usize) -> Self {
        FairGate {
            state: std::sync::Mutex::new(GateState {
                queue: FairQueue::new(shares),
                free: capacity.max(1),
                max_waiting,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for `tenant`'s turn; refused at once when its queue is full.
    pub async fn enter(&self, tenant: &str) -> Result<Pass<'_>, GateFull> {
        let (admit, admitted) = tokio::sync::oneshot::channel();
        {
            let mut state = self.lock();
            if state.queue.waiting() >= state.max_waiting {
                return Err(GateFull);
            }
            state.queue.push(tenant, admit).map_err(|_| GateFull)?;
            state.admit_next();
        }
        let mut waiting = Waiting {
            gate: self,
            tenant,
            admitted,
        };
        match (&mut waiting.admitted).await {
            Ok(()) => Ok(Pass {
                gate: self,
                tenant: tenant.to_owned(),
            }),
            // Never sent: only when the gate itself goes away.
            Err(_) => Err(GateFull),
        }
    }

    fn release(&self, tenant: &str) {
        let mut state = self.lock();
        state.queue.finish(tenant);
        state.free += 1;
        state.admit_next();
    }
}

/// A waiter; dropped (its request gone) after being admitted but before it
/// saw so, it gives the place back.
struct Waiting<'a, 't> {
    gate: &'a FairGate,
    tenant: &'t str,
    admitted: tokio::sync::oneshot::Receiver<()>,
}

impl Drop for Waiting<'_, '_> {
    fn drop(&mut self) {
        if self.admitted.try_recv().is_ok() {
            self.gate.release(self.tenant);
        }
    }
}

impl GateState {
    fn admit_next(&mut self) {
        while self.free > 0 {
            let Some((tenant, admit)) = self.queue.take() else {
                return;
            };
            if admit.send(()).is_ok() {
                self.free -= 1;
            } else {
                // Its waiter is gone (the request was dropped).
                self.queue.finish(&tenant);
            }
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.gate.release(&self.tenant);
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
        assert!(!q.has_takeable());
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

    fn gate() -> FairGate {
        FairGate::new(
            1,
            Shares {
                running: 1,
                waiting: 2,
            },
            4,
        )
    }

    #[tokio::test]
    async fn a_gate_admits_tenants_in_turns_and_refuses_a_full_queue() {
        let gate = gate();
        let first = gate.enter("flood").await.expect("free");
        let order = std::sync::Mutex::new(Vec::new());
        let wait = |tenant: &'static str| {
            let (gate, order) = (&gate, &order);
            async move {
                let pass = gate.enter(tenant).await;
                order.lock().expect("lock").push(tenant);
                drop(pass);
            }
        };
        let (a, b, c) = (wait("flood"), wait("flood"), wait("quiet"));
        tokio::pin!(a, b, c);
        // Queue them (each polled once) in this order: flood, flood, quiet.
        for future in [a.as_mut(), b.as_mut(), c.as_mut()] {
            assert!(futures_poll_once(future).await.is_pending());
        }
        assert_eq!(
            gate.enter("flood").await.err(),
            Some(GateFull),
            "flood's queue is full"
        );
        drop(first);
        tokio::join!(a, b, c);
        assert_eq!(*order.lock().expect("lock"), ["flood", "quiet", "flood"]);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_its_place() {
        let gate = gate();
        let first = gate.enter("a").await.expect("free");
        {
            let gone = gate.enter("b");
            tokio::pin!(gone);
            assert!(futures_poll_once(gone.as_mut()).await.is_pending());
        }
        drop(first);
        let again = gate.enter("c").await.expect("the place came back");
        drop(again);
        assert_eq!(gate.lock().free, 1);
    }

    /// Polls `future` once.
    async fn futures_poll_once<F: std::future::Future + ?Sized>(
        future: std::pin::Pin<&mut F>,
    ) -> std::task::Poll<F::Output> {
        let mut future = Some(future);
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(future.take().expect("once").as_mut().poll(cx))
        })
        .await
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

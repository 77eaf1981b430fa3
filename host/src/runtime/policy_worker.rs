//! The threads beside the SIP loop that run every call's policies: the
//! campaign's scorer, bidder strategy modules, the selector, and the
//! real-time bidders' auctions. A policy may use its whole deadline, and a
//! tenant may send many calls: on the loop either would hold every other
//! tenant's SIP handling behind it. Here each tenant's calls queue apart and
//! take turns ([`crate::fair`]), and one tenant runs on at most all workers
//! but one (a quarter of them fewer on a large machine), so a tenant whose
//! policies are slow waits behind itself while the other tenants' calls go
//! on. With ten modules and a selector policy
//! work is over half of a call's CPU; off the loop it also runs on every
//! core. Calls that invoke no policy (no scorer, static bids alone) are
//! routed on the loop: for them the hop here and back costs more than the
//! work (`docs/benchmarks.md`).
//!
//! Such a call crosses once each way: a worker scores it, hands the score
//! back at once (the call moves on to routing, and may ring back early),
//! runs its auction without waiting to be asked, and hands back the ring
//! tree. The loop then drops the auction request the call makes on its
//! score, since the answer is on its way. An auction with real-time bidders
//! asks them on a task of the loop's runtime and comes back here, in its
//! tenant's turn, to be concluded.

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::call_services::{CallServices, Destination, Gathering};
use super::real_time_bids::{RealTimeAnswer, RealTimeBids};
use crate::b2bua::{AuctionRequest, Input, ScoreRequest, Scored};
use crate::fair::{FairQueue, Shares};

/// A call's next input, decided off the loop.
pub(crate) type Decided = (u64, Input);

enum Job {
    /// Score the call for its campaign (found on the loop), then run its
    /// auction.
    Route {
        call: u64,
        request: ScoreRequest,
        destination: Box<Destination>,
    },
    /// Run the auction a call asked for.
    Auction { call: u64, request: AuctionRequest },
    /// An auction whose real-time answers are in (or late).
    Conclude {
        call: u64,
        request: AuctionRequest,
        gathering: Box<Gathering>,
        answers: Vec<RealTimeAnswer>,
    },
}

/// How many workers a host runs, and how many of them one tenant may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerCount {
    pub workers: usize,
    pub per_tenant: usize,
}

impl WorkerCount {
    /// One worker per core and one more, at least three; a tenant holds a
    /// quarter of them fewer (at least one fewer), so another tenant's call
    /// finds a worker free however slow the first tenant's policies are.
    /// (Half the cores each, on two cores one worker per tenant, halved the
    /// calls per second one tenant gets: `docs/benchmarks.md`.)
    pub fn for_cores(cores: usize) -> Self {
        let workers = (cores + 1).max(3);
        WorkerCount {
            workers,
            per_tenant: workers - (workers / 4).max(1),
        }
    }

    pub fn of_this_machine() -> Self {
        Self::for_cores(std::thread::available_parallelism().map_or(2, usize::from))
    }
}

/// The queue the workers share, and the loop and real-time tasks fill.
struct Shared {
    pending: Mutex<Pending>,
    ready: Condvar,
}

struct Pending {
    jobs: FairQueue<Job>,
    /// Workers waiting for a job.
    idle: usize,
    /// The loop is gone: workers end once nothing they can take is left.
    stopping: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, tenant: &str, job: Job) -> bool {
        let mut pending = self.lock();
        if pending.stopping {
            return false;
        }
        // Waiting is unbounded per tenant: the switch bounds calls in all,
        // and a call has one job queued at a time.
        let queued = pending.jobs.push(tenant, job).is_ok();
        self.wake_if_needed(&pending);
        queued
    }

    /// Ends the job of `finished` (if any), then the next job in turn,
    /// waiting for one; none once stopping and empty. A worker that just
    /// finished takes the next job itself: waking another thread for it
    /// costs a scheduler round trip per job.
    fn next(&self, finished: Option<&str>) -> Option<(String, Job)> {
        let mut pending = self.lock();
        if let Some(tenant) = finished {
            pending.jobs.finish(tenant);
        }
        loop {
            if let Some(taken) = pending.jobs.take() {
                // Others may be free to run now (this tenant's share freed).
                self.wake_if_needed(&pending);
                return Some(taken);
            }
            if pending.stopping && pending.jobs.waiting() == 0 {
                return None;
            }
            pending.idle += 1;
            pending = self.ready.wait(pending).unwrap_or_else(|p| p.into_inner());
            pending.idle -= 1;
        }
    }

    /// Wakes a waiting worker only for a job one can take now: a job held
    /// back by its tenant's share is taken by that tenant's next finishing
    /// worker.
    fn wake_if_needed(&self, pending: &Pending) {
        if pending.idle > 0 && pending.jobs.has_takeable() {
            self.ready.notify_one();
        }
    }

    /// Ends `tenant`'s job for a worker that takes no other.
    fn next_done(&self, tenant: &str) {
        let mut pending = self.lock();
        pending.jobs.finish(tenant);
        self.wake_if_needed(&pending);
    }

    fn stop(&self) {
        self.lock().stopping = true;
        self.ready.notify_all();
    }
}

/// The loop's end of the workers: hands them calls, and knows which calls
/// they hold. Dropping it ends the threads once the jobs queued are done.
pub(crate) struct PolicyWorkers {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// Calls whose ring tree the workers have still to hand back.
    routing: HashSet<u64>,
}

impl PolicyWorkers {
    /// Starts the threads; their answers go to `decided`, real-time asks run
    /// on `runtime` (the loop's).
    pub(crate) fn start(
        count: WorkerCount,
        services: Arc<CallServices>,
        decided: mpsc::UnboundedSender<Decided>,
        runtime: Handle,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                jobs: FairQueue::new(Shares {
                    running: count.per_tenant,
                    waiting: usize::MAX,
                }),
                idle: 0,
                stopping: false,
            }),
            ready: Condvar::new(),
        });
        let mut workers = PolicyWorkers {
            shared: shared.clone(),
            threads: Vec::new(),
            routing: HashSet::new(),
        };
        // One client, so that its connections to bidders are shared.
        let real_time = RealTimeBids::new();
        for index in 0..count.workers {
            let worker = Worker {
                services: services.clone(),
                decided: decided.clone(),
                runtime: runtime.clone(),
                real_time: real_time.clone(),
                shared: shared.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("call-policies-{index}"))
                .spawn(move || worker.run())?;
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// Scores `call` and runs its auction on a worker.
    pub(crate) fn route(&mut self, call: u64, request: ScoreRequest, destination: Destination) {
        let tenant = destination.campaign.tenant_id.clone();
        let destination = Box::new(destination);
        self.submit(
            call,
            &tenant,
            Job::Route {
                call,
                request,
                destination,
            },
        );
    }

    /// Runs the auction `call` asks for on a worker.
    pub(crate) fn auction(&mut self, call: u64, request: AuctionRequest) {
        let tenant = request.scoring.campaign.tenant_id.clone();
        self.submit(call, &tenant, Job::Auction { call, request });
    }

    /// Whether the workers have `call`: its auction request, once scored,
    /// is then answered already.
    pub(crate) fn is_routing(&self, call: u64) -> bool {
        self.routing.contains(&call)
    }

    /// Notes what came back for `call`: a ring tree, or a score that ends
    /// the call's routing, ends the workers' part.
    pub(crate) fn returned(&mut self, call: u64, input: &Input) {
        if matches!(
            input,
            Input::Auctioned(_) | Input::Scored(Scored::UnknownNumber)
        ) {
            self.routing.remove(&call);
        }
    }

    /// Calls the workers are scoring or auctioning.
    pub(crate) fn calls(&self) -> usize {
        self.routing.len()
    }

    fn submit(&mut self, call: u64, tenant: &str, job: Job) {
        if self.shared.push(tenant, job) {
            self.routing.insert(call);
        }
    }
}

impl Drop for PolicyWorkers {
    fn drop(&mut self) {
        self.shared.stop();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

struct Worker {
    services: Arc<CallServices>,
    decided: mpsc::UnboundedSender<Decided>,
    runtime: Handle,
    real_time: RealTimeBids,
    /// For real-time asks to come back with their answers.
    shared: Arc<Shared>,
}

impl Worker {
    /// Does jobs in their turn. Each handler says whether the loop is still
    /// there to take its answer; once it is not, the thread ends.
    fn run(self) {
        let mut finished: Option<String> = None;
        while let Some((tenant, job)) = self.shared.next(finished.as_deref()) {
            let answered = match job {
                Job::Route {
                    call,
                    request,
                    destination,
                } => self.route(call, &request, *destination),
                Job::Auction { call, request } => self.auction(call, request),
                Job::Conclude {
                    call,
                    request,
                    gathering,
                    answers,
                } => self.conclude(call, &request, *gathering, answers),
            };
            if !answered {
                self.shared.next_done(&tenant);
                return;
            }
            finished = Some(tenant);
        }
    }

    fn route(&self, call: u64, request: &ScoreRequest, destination: Destination) -> bool {
        let scored = self.services.score_for(request, destination);
        let auction = match &scored {
            Scored::Campaign(scoring) => Some(request.auction(scoring.clone())),
            Scored::UnknownNumber => None,
        };
        if self.decided.send((call, Input::Scored(scored))).is_err() {
            return false;
        }
        auction.is_none_or(|request| self.auction(call, request))
    }

    fn auction(&self, call: u64, request: AuctionRequest) -> bool {
        let gathering = self.services.gather(&request);
        if gathering.real_time.is_empty() {
            return self.conclude(call, &request, gathering, Vec::new());
        }
        self.ask_in_real_time(call, request, gathering);
        true
    }

    fn conclude(
        &self,
        call: u64,
        request: &AuctionRequest,
        gathering: Gathering,
        answers: Vec<RealTimeAnswer>,
    ) -> bool {
        let tree = self.services.conclude(request, gathering, answers);
        self.decided
            .send((call, Input::Auctioned(Box::new(tree))))
            .is_ok()
    }

    /// Asks the auction's real-time bidders on a task; the call waits in its
    /// routing phase, and the answers come back as a `Conclude` job.
    fn ask_in_real_time(&self, call: u64, request: AuctionRequest, gathering: Gathering) {
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(u64::from(request.scoring.campaign.auction_timeout_ms));
        let real_time = self.real_time.clone();
        let back = self.shared.clone();
        self.runtime.spawn(async move {
            let bidders = gathering.real_time.clone();
            let floor = request.scoring.campaign.floor_price_micros;
            let answers = real_time
                .ask(bidders, &gathering.offer, floor, deadline)
                .await;
            let tenant = request.scoring.campaign.tenant_id.clone();
            back.push(
                &tenant,
                Job::Conclude {
                    call,
                    request,
                    gathering: Box::new(gathering),
                    answers,
                },
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::WorkerCount;

    #[test]
    fn one_tenant_never_holds_every_worker() {
        for cores in 1..=128 {
            let count = WorkerCount::for_cores(cores);
            assert!(count.workers > cores, "{count:?}");
            assert!(count.per_tenant >= 1, "{count:?}");
            assert!(count.per_tenant < count.workers, "{count:?}");
        }
        assert_eq!(
            WorkerCount::for_cores(2),
            WorkerCount {
                workers: 3,
                per_tenant: 2
            }
        );
        assert_eq!(WorkerCount::for_cores(16).per_tenant, 13);
    }
}

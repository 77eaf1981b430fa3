//! The thread beside the SIP loop that routes the calls whose auction
//! invokes policies: bidder strategy modules, the selector, real-time
//! bidders. With ten modules and a selector that work is over half of a
//! call's CPU; done on the loop it capped calls per second at what one core
//! could do, while the loop's own work (parsing, transactions, sending)
//! waited behind it. On a thread of its own the two run on both cores.
//! Calls whose auction is static bids alone are scored and auctioned on the
//! loop: for them the hop to this thread and back costs more than the work
//! (`docs/benchmarks.md`).
//!
//! Such a call crosses once each way: the worker scores it, hands the score
//! back at once (the call moves on to routing, and may ring back early),
//! runs its auction without waiting to be asked, and hands back the ring
//! tree. The loop then drops the auction request the call makes on its
//! score, since the answer is on its way. An auction with real-time bidders
//! asks them on a task of the loop's runtime and comes back here to be
//! concluded.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::call_services::{CallServices, Destination, Gathering};
use super::real_time_bids::{RealTimeAnswer, RealTimeBids};
use crate::b2bua::{AuctionRequest, Input, ScoreRequest, Scored};

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
    /// The loop is done. Not the channel's end: real-time asks in flight
    /// hold senders of their own.
    Stop,
}

/// The loop's end of the worker: hands it calls, and knows which calls it
/// holds. Dropping it ends the thread once the jobs queued are done.
pub(crate) struct PolicyWorker {
    jobs: std_mpsc::Sender<Job>,
    thread: Option<JoinHandle<()>>,
    /// Calls whose ring tree the worker has still to hand back.
    routing: HashSet<u64>,
}

impl PolicyWorker {
    /// Starts the thread; its answers go to `decided`, real-time asks run on
    /// `runtime` (the loop's).
    pub(crate) fn start(
        services: Arc<CallServices>,
        decided: mpsc::UnboundedSender<Decided>,
        runtime: Handle,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = std_mpsc::channel();
        let worker = Worker {
            services,
            decided,
            runtime,
            real_time: RealTimeBids::new(),
            jobs: jobs.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("call-policies".into())
            .spawn(move || worker.run(&queue))?;
        Ok(PolicyWorker {
            jobs,
            thread: Some(thread),
            routing: HashSet::new(),
        })
    }

    /// Scores `call` and runs its auction on the worker.
    pub(crate) fn route(&mut self, call: u64, request: ScoreRequest, destination: Destination) {
        let destination = Box::new(destination);
        self.submit(
            call,
            Job::Route {
                call,
                request,
                destination,
            },
        );
    }

    /// Runs the auction `call` asks for on the worker.
    pub(crate) fn auction(&mut self, call: u64, request: AuctionRequest) {
        self.submit(call, Job::Auction { call, request });
    }

    /// Whether the worker has `call`: its auction request, once scored, is
    /// then answered already.
    pub(crate) fn is_routing(&self, call: u64) -> bool {
        self.routing.contains(&call)
    }

    /// Notes what came back for `call`: a ring tree, or a score that ends
    /// the call's routing, ends the worker's part.
    pub(crate) fn returned(&mut self, call: u64, input: &Input) {
        if matches!(
            input,
            Input::Auctioned(_) | Input::Scored(Scored::UnknownNumber)
        ) {
            self.routing.remove(&call);
        }
    }

    /// Calls the worker is scoring or auctioning.
    pub(crate) fn calls(&self) -> usize {
        self.routing.len()
    }

    fn submit(&mut self, call: u64, job: Job) {
        // Fails only once the thread is gone (it panicked): the call then
        // waits for its caller's timers, and the panic is in the log.
        if self.jobs.send(job).is_ok() {
            self.routing.insert(call);
        }
    }
}

impl Drop for PolicyWorker {
    fn drop(&mut self) {
        let _ = self.jobs.send(Job::Stop);
        if let Some(thread) = self.thread.take() {
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
    jobs: std_mpsc::Sender<Job>,
}

impl Worker {
    /// Does the jobs in order. Each handler says whether the loop is still
    /// there to take its answer; once it is not, the thread ends.
    fn run(self, queue: &std_mpsc::Receiver<Job>) {
        while let Ok(job) = queue.recv() {
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
                Job::Stop => return,
            };
            if !answered {
                return;
            }
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
        let back = self.jobs.clone();
        self.runtime.spawn(async move {
            let bidders = gathering.real_time.clone();
            let floor = request.scoring.campaign.floor_price_micros;
            let answers = real_time
                .ask(bidders, &gathering.offer, floor, deadline)
                .await;
            let _ = back.send(Job::Conclude {
                call,
                request,
                gathering: Box::new(gathering),
                answers,
            });
        });
    }
}

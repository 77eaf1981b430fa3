//! The thread beside the SIP loop that runs the auctions that invoke
//! policies: bidder strategy modules, the selector, real-time bidders. With
//! ten modules and a selector that work is over half of a call's CPU; done
//! on the loop it capped calls per second at what one core could do, while
//! the loop's own work (parsing, transactions, sending) waited behind it. On
//! a thread of its own the two run on both cores. Auctions of static bids
//! alone stay on the loop, and so does scoring: for them the hop to this
//! thread and back costs more than the work (`docs/benchmarks.md`).
//!
//! Jobs arrive over a channel in the order calls ask for them; each ring
//! tree goes back to the loop as its call's next input. An auction with
//! real-time bidders asks them on a task of the loop's runtime and comes
//! back here to be concluded.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::call_services::{CallServices, Gathering};
use super::real_time_bids::{RealTimeAnswer, RealTimeBids};
use crate::b2bua::{AuctionRequest, Input};

/// A call's next input, decided off the loop.
pub(crate) type Decided = (u64, Input);

enum Job {
    Auction {
        call: u64,
        request: AuctionRequest,
    },
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

/// The worker's end for the loop: hands it jobs; dropping it ends the
/// thread once the jobs queued are done.
pub(crate) struct PolicyWorker {
    jobs: std_mpsc::Sender<Job>,
    thread: Option<JoinHandle<()>>,
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
        })
    }

    pub(crate) fn auction(&self, call: u64, request: AuctionRequest) {
        // Fails only once the thread is gone (it panicked): the call then
        // waits for its caller's timers, and the panic is in the log.
        let _ = self.jobs.send(Job::Auction { call, request });
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
    fn run(self, queue: &std_mpsc::Receiver<Job>) {
        let services = &self.services;
        while let Ok(job) = queue.recv() {
            let (call, input) = match job {
                Job::Auction { call, request } => {
                    let gathering = services.gather(&request);
                    if !gathering.real_time.is_empty() {
                        self.ask_in_real_time(call, request, gathering);
                        continue;
                    }
                    let tree = services.conclude(&request, gathering, Vec::new());
                    (call, Input::Auctioned(Box::new(tree)))
                }
                Job::Conclude {
                    call,
                    request,
                    gathering,
                    answers,
                } => {
                    let tree = services.conclude(&request, *gathering, answers);
                    (call, Input::Auctioned(Box::new(tree)))
                }
                Job::Stop => return,
            };
            if self.decided.send((call, input)).is_err() {
                return;
            }
        }
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

//! Replays as jobs: started through the API, run off the async runtime,
//! read back by id with their progress until the report is there. Kept in
//! memory, a few per tenant: a restart forgets them, and since a replay
//! stores nothing, running it again gives the same report.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use super::ReplayReport;

/// Jobs kept per tenant, finished or not; starting one more forgets the
/// oldest finished one.
pub const MAX_JOBS_KEPT: usize = 10;
/// Jobs per tenant not finished yet (waiting for their turn or running).
pub const MAX_JOBS_UNFINISHED: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for the tenant's turn at the policy workers.
    Queued,
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct JobError {
    /// The code the request would have been refused with (`replay.empty`,
    /// `policy.busy`, …).
    pub code: String,
    pub message: String,
}

/// A replay job as its tenant sees it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReplayJob {
    pub id: String,
    pub policy_id: String,
    pub version: String,
    pub state: JobState,
    /// Stored calls read so far.
    pub calls_done: u64,
    /// Calls it reads at most (the request's limit).
    pub calls_limit: u64,
    /// Unix seconds.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// When done.
    pub report: Option<ReplayReport>,
    /// When failed.
    pub error: Option<JobError>,
}

struct Slot {
    job: Mutex<ReplayJob>,
    calls_done: AtomicU64,
}

impl Slot {
    fn job(&self) -> MutexGuard<'_, ReplayJob> {
        self.job.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn finished(&self) -> bool {
        matches!(self.job().state, JobState::Done | JobState::Failed)
    }
}

/// Why a job was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartRefusal {
    #[error("{MAX_JOBS_UNFINISHED} replays of yours are still running; wait for one to finish")]
    TooMany,
}

/// One tenant's jobs by id, oldest first.
type Jobs = VecDeque<(String, Arc<Slot>)>;

/// Every tenant's jobs.
#[derive(Default)]
pub struct ReplayJobs {
    by_tenant: Mutex<HashMap<String, Jobs>>,
}

/// The running side of one job: progress and the end.
#[derive(Clone)]
pub struct JobHandle {
    slot: Arc<Slot>,
}

impl ReplayJobs {
    pub fn new() -> Self {
        Self::default()
    }

    fn tenants(&self) -> MutexGuard<'_, HashMap<String, Jobs>> {
        self.by_tenant.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a queued job for `tenant`.
    pub fn start(
        &self,
        tenant: &str,
        job: ReplayJob,
    ) -> Result<(ReplayJob, JobHandle), StartRefusal> {
        let mut tenants = self.tenants();
        let jobs = tenants.entry(tenant.to_owned()).or_default();
        let unfinished = jobs.iter().filter(|(_, slot)| !slot.finished()).count();
        if unfinished >= MAX_JOBS_UNFINISHED {
            return Err(StartRefusal::TooMany);
        }
        if jobs.len() >= MAX_JOBS_KEPT
            && let Some(oldest) = jobs.iter().position(|(_, slot)| slot.finished())
        {
            jobs.remove(oldest);
        }
        let slot = Arc::new(Slot {
            job: Mutex::new(job.clone()),
            calls_done: AtomicU64::new(0),
        });
        jobs.push_back((job.id.clone(), slot.clone()));
        Ok((job, JobHandle { slot }))
    }

    /// `tenant`'s job `id` as it stands; none for another tenant's.
    pub fn get(&self, tenant: &str, id: &str) -> Option<ReplayJob> {
        let tenants = self.tenants();
        let (_, slot) = tenants.get(tenant)?.iter().find(|(job, _)| job == id)?;
        let mut job = slot.job().clone();
        if job.state != JobState::Done {
            job.calls_done = slot.calls_done.load(Ordering::Relaxed);
        }
        Some(job)
    }
}

impl JobHandle {
    pub fn running(&self) {
        self.slot.job().state = JobState::Running;
    }

    pub fn progress(&self, calls_done: u64) {
        self.slot.calls_done.store(calls_done, Ordering::Relaxed);
    }

    pub fn finish(&self, outcome: Result<ReplayReport, JobError>, now: i64) {
        let mut job = self.slot.job();
        job.finished_at = Some(now);
        match outcome {
            Ok(report) => {
                job.state = JobState::Done;
                job.calls_done = report.calls_replayed + report.calls_without_inputs;
                job.report = Some(report);
            }
            Err(error) => {
                job.state = JobState::Failed;
                job.error = Some(error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> ReplayJob {
        ReplayJob {
            id: id.to_owned(),
            policy_id: "pol_1".to_owned(),
            version: "v".to_owned(),
            state: JobState::Queued,
            calls_done: 0,
            calls_limit: 10,
            started_at: 0,
            finished_at: None,
            report: None,
            error: None,
        }
    }

    fn failure() -> JobError {
        JobError {
            code: "replay.empty".to_owned(),
            message: "none".to_owned(),
        }
    }

    #[test]
    fn a_tenant_sees_only_its_own_jobs_and_their_progress() {
        let jobs = ReplayJobs::new();
        let (_, handle) = jobs.start("ten_a", job("rpl_1")).expect("started");
        assert_eq!(jobs.get("ten_b", "rpl_1"), None);
        handle.running();
        handle.progress(7);
        let seen = jobs.get("ten_a", "rpl_1").expect("its own");
        assert_eq!((seen.state, seen.calls_done), (JobState::Running, 7));
        handle.finish(Err(failure()), 5);
        let seen = jobs.get("ten_a", "rpl_1").expect("its own");
        assert_eq!(seen.state, JobState::Failed);
        assert_eq!(seen.error, Some(failure()));
        assert_eq!(seen.finished_at, Some(5));
    }

    #[test]
    fn a_tenant_runs_two_at_once_and_keeps_ten() {
        let jobs = ReplayJobs::new();
        let (_, first) = jobs.start("ten_a", job("rpl_0")).expect("first");
        let (_, second) = jobs.start("ten_a", job("rpl_1")).expect("second");
        assert_eq!(
            jobs.start("ten_a", job("rpl_x")).err(),
            Some(StartRefusal::TooMany)
        );
        assert!(
            jobs.start("ten_b", job("rpl_b")).is_ok(),
            "others' own turn"
        );
        first.finish(Err(failure()), 1);
        second.finish(Err(failure()), 1);
        for i in 2..=MAX_JOBS_KEPT + 1 {
            let (_, handle) = jobs.start("ten_a", job(&format!("rpl_{i}"))).expect("room");
            handle.finish(Err(failure()), 1);
        }
        assert_eq!(jobs.get("ten_a", "rpl_0"), None, "the oldest is forgotten");
        assert_eq!(jobs.get("ten_a", "rpl_1"), None);
        assert!(jobs.get("ten_a", "rpl_2").is_some());
        assert_eq!(jobs.tenants()["ten_a"].len(), MAX_JOBS_KEPT);
    }
}

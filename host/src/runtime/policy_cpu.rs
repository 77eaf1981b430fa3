//! Where the policy workers meet [`CpuShares`]: the CPU a policy takes is
//! read from its thread's own clock (time the thread waited for a core is
//! not the tenant's), and charged to the tenant whose code it is — for a
//! bidder's strategy module the bidder, not the marketer whose call it is.

use std::sync::Mutex;
use std::time::Duration;

use rustix::time::{ClockId, clock_gettime};

use crate::clock;
use crate::fair::CpuShares;

pub struct PolicyCpu {
    shares: Mutex<CpuShares>,
}

impl PolicyCpu {
    /// `percent` of this machine's cores for each tenant.
    pub fn for_this_machine(percent: u8) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(share_of_cores(cores, percent))
    }

    /// `per_second` of CPU each second for each tenant.
    pub fn new(per_second: Duration) -> Self {
        PolicyCpu {
            shares: Mutex::new(CpuShares::new(per_second)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CpuShares> {
        self.shares.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `tenant` has a call that runs no policy.
    pub fn note_call(&self, tenant: &str) {
        self.lock().note_call(tenant, clock::now());
    }

    /// Runs `policy` of `tenant` and charges its CPU; none, without running
    /// it, when the tenant has used its share while others have calls.
    pub fn run<T>(&self, tenant: &str, policy: impl FnOnce() -> T) -> Option<T> {
        if !self.lock().may_run(tenant, clock::now()) {
            return None;
        }
        let before = thread_cpu();
        let ran = policy();
        let spent = thread_cpu().saturating_sub(before);
        self.lock().spend(tenant, spent, clock::now());
        Some(ran)
    }
}

/// `percent` (1–100) of `cores` cores, as CPU per second.
fn share_of_cores(cores: usize, percent: u8) -> Duration {
    let percent = u32::from(percent.clamp(1, 100));
    let cores = u32::try_from(cores.max(1)).unwrap_or(u32::MAX);
    Duration::from_secs(1) * cores.saturating_mul(percent) / 100
}

/// CPU this thread has used.
fn thread_cpu() -> Duration {
    let time = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(time.tv_sec).unwrap_or(0),
        u32::try_from(time.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_of_every_core() {
        assert_eq!(share_of_cores(2, 25), Duration::from_millis(500));
        assert_eq!(share_of_cores(16, 10), Duration::from_millis(1600));
        assert_eq!(
            share_of_cores(1, 0),
            Duration::from_millis(10),
            "at least 1 %"
        );
    }

    #[test]
    fn the_thread_clock_counts_work_and_not_sleep() {
        let cpu = PolicyCpu::new(Duration::from_millis(1));
        let before = thread_cpu();
        let ran = cpu.run("sleeper", || std::thread::sleep(Duration::from_millis(50)));
        assert!(ran.is_some());
        assert!(thread_cpu() - before < Duration::from_millis(25));
        let busy = cpu.run("spinner", || {
            let start = thread_cpu();
            while thread_cpu() - start < Duration::from_millis(20) {}
        });
        assert!(busy.is_some());
        cpu.note_call("sleeper");
        assert!(cpu.run("sleeper", || ()).is_some(), "sleeping cost nothing");
        assert!(cpu.run("spinner", || ()).is_none(), "spinning is charged");
    }
}

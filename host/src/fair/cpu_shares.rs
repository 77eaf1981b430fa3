//! Each tenant's share of the CPU its policies take, sans-IO. The workers
//! keep one tenant's slow calls from waiting in front of another's, but a
//! tenant whose policies spin to their deadline on every call would still
//! take whole cores from everyone (the SIP loop, the other tenants' workers).
//! So a policy runs only while its tenant has CPU time left in a bucket that
//! refills at a share of the node; past it, while another tenant has calls,
//! its policies are not run and its calls go on under their failure mode.
//! Alone on the node a tenant may use all of it: the bound is there to
//! protect others, not to idle cores.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::rate::{Bucket, Rate};

/// The share of the node's CPU one tenant's policies may take while others
/// have calls, by default: a quarter.
pub const DEFAULT_TENANT_CPU_PERCENT: u8 = 25;

/// How long after its last call a tenant still counts as having calls.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(1);

/// Buckets kept before the full ones (tenants idle long enough to be
/// repaid) are forgotten.
const MAX_TRACKED: usize = 4096;

/// Policy CPU by tenant.
#[derive(Debug)]
pub struct CpuShares {
    rate: Rate,
    buckets: HashMap<String, Bucket>,
    /// The two tenants with the latest calls, latest first: the other one
    /// of them is the latest other tenant of whichever asks.
    latest: [Option<(String, Instant)>; 2],
}

impl CpuShares {
    /// Each tenant may take `per_second` of CPU each second (bursts of one
    /// second's worth) while another has calls.
    pub fn new(per_second: Duration) -> Self {
        let seconds = per_second.as_secs_f64();
        CpuShares {
            rate: Rate {
                per_second: seconds,
                burst: seconds,
            },
            buckets: HashMap::new(),
            latest: [None, None],
        }
    }

    /// `tenant` has a call now (whether or not it runs a policy).
    pub fn note_call(&mut self, tenant: &str, now: Instant) {
        let known = self
            .latest
            .iter()
            .position(|latest| latest.as_ref().is_some_and(|(t, _)| t == tenant));
        match known {
            Some(place) => {
                self.latest.swap(0, place);
                if let Some((_, at)) = &mut self.latest[0] {
                    *at = now;
                }
            }
            None => {
                self.latest[1] = self.latest[0].take();
                self.latest[0] = Some((tenant.to_owned(), now));
            }
        }
    }

    /// Whether `tenant`'s policy may run now: it has CPU left, or no other
    /// tenant has calls. Counts as a call of `tenant`.
    pub fn may_run(&mut self, tenant: &str, now: Instant) -> bool {
        self.note_call(tenant, now);
        let rate = self.rate;
        let has_time = self
            .buckets
            .get_mut(tenant)
            .is_none_or(|bucket| bucket.has_any(&rate, now));
        has_time || !self.others_have_calls(tenant, now)
    }

    /// `tenant`'s policies took `cpu`.
    pub fn spend(&mut self, tenant: &str, cpu: Duration, now: Instant) {
        let rate = self.rate;
        if !self.buckets.contains_key(tenant) && self.buckets.len() >= MAX_TRACKED {
            self.buckets.retain(|_, bucket| !bucket.is_full(&rate, now));
        }
        self.buckets
            .entry(tenant.to_owned())
            .or_insert_with(|| Bucket::full(&rate, now))
            .spend(&rate, cpu.as_secs_f64(), now);
    }

    fn others_have_calls(&self, tenant: &str, now: Instant) -> bool {
        self.latest.iter().flatten().any(|(other, at)| {
            other != tenant && now.saturating_duration_since(*at) <= ACTIVE_WINDOW
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A tenant allowed 100 ms of CPU per second.
    fn shares() -> CpuShares {
        CpuShares::new(100 * MS)
    }

    #[test]
    fn a_tenant_past_its_share_stops_while_another_has_calls() {
        let mut cpu = shares();
        let start = crate::clock::now();
        cpu.note_call("victim", start);
        let mut ran = 0;
        // 10 ms per policy run, one each millisecond for a second.
        for i in 0..1000 {
            let now = start + i * MS;
            cpu.note_call("victim", now);
            if cpu.may_run("spinner", now) {
                cpu.spend("spinner", 10 * MS, now);
                ran += 1;
            }
        }
        // The first 100 ms of burst, then 100 ms a second: 20 runs, give or
        // take the one that goes into debt.
        assert!((19..=22).contains(&ran), "{ran} runs");
        assert!(
            cpu.may_run("victim", start + 1000 * MS),
            "the victim is untouched"
        );
    }

    #[test]
    fn a_tenant_alone_on_the_node_may_use_all_of_it() {
        let mut cpu = shares();
        let start = crate::clock::now();
        for i in 0..1000 {
            let now = start + i * MS;
            assert!(cpu.may_run("alone", now), "run {i}");
            cpu.spend("alone", 10 * MS, now);
        }
        // Another tenant's call arrives: the first one's debt now counts.
        let later = start + 1000 * MS;
        cpu.note_call("newcomer", later);
        assert!(!cpu.may_run("alone", later));
        // A second after the newcomer's last call the first is alone again.
        assert!(cpu.may_run("alone", later + ACTIVE_WINDOW + MS));
    }

    #[test]
    fn debt_is_repaid_at_the_share_and_is_bounded() {
        let mut cpu = shares();
        let start = crate::clock::now();
        cpu.note_call("other", start);
        // A whole minute of CPU in one go: debt stops at one burst.
        cpu.spend("heavy", Duration::from_secs(60), start);
        let mut now = start;
        while !cpu.may_run("heavy", now) {
            cpu.note_call("other", now);
            now += 10 * MS;
        }
        let waited = now - start;
        assert!(
            (Duration::from_millis(990)..=Duration::from_millis(1010)).contains(&waited),
            "repaid after {waited:?}"
        );
    }

    #[test]
    fn the_latest_other_tenant_is_known_whoever_asks() {
        let mut cpu = shares();
        let start = crate::clock::now();
        cpu.note_call("a", start);
        cpu.note_call("b", start + MS);
        cpu.note_call("a", start + 2 * MS);
        cpu.note_call("a", start + 3 * MS);
        assert!(cpu.others_have_calls("a", start + 3 * MS), "b is recent");
        assert!(cpu.others_have_calls("b", start + 3 * MS));
        assert!(cpu.others_have_calls("c", start + 3 * MS));
        let quiet = start + 2 * MS + ACTIVE_WINDOW + MS;
        assert!(!cpu.others_have_calls("a", quiet), "b went quiet");
        assert!(cpu.others_have_calls("b", quiet), "a is still recent");
    }

    #[test]
    fn buckets_of_tenants_long_repaid_are_forgotten() {
        let mut cpu = shares();
        let start = crate::clock::now();
        for i in 0..MAX_TRACKED {
            cpu.spend(&format!("t{i}"), MS, start);
        }
        cpu.spend("one more", MS, start + Duration::from_secs(1));
        assert_eq!(cpu.buckets.len(), 1);
    }
}

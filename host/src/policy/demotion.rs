//! Whether a canary or shadow fails too often to keep serving, sans-IO: a
//! window over its last invocations' outcomes, and a verdict, once.

use std::collections::{BTreeMap, VecDeque};

use crate::model::DemotionRule;

/// The last outcomes of one version in one role.
#[derive(Debug)]
pub struct FailureWindow {
    rule: DemotionRule,
    /// The failure kind of each of the last invocations; none for a success.
    recent: VecDeque<Option<&'static str>>,
    failures: usize,
    tripped: bool,
}

impl FailureWindow {
    pub fn new(rule: DemotionRule) -> Self {
        FailureWindow {
            rule,
            recent: VecDeque::new(),
            failures: 0,
            tripped: false,
        }
    }

    /// Counts one invocation (`failure`: its kind, if it failed). The
    /// first time the window is full and fails more than the rule allows,
    /// the reason to demote; never again after.
    pub fn observe(&mut self, failure: Option<&'static str>) -> Option<String> {
        let window = usize::try_from(self.rule.window.max(1)).unwrap_or(usize::MAX);
        self.failures += usize::from(failure.is_some());
        self.recent.push_back(failure);
        while self.recent.len() > window {
            if self.recent.pop_front().flatten().is_some() {
                self.failures -= 1;
            }
        }
        let too_many = self.failures * 100 > usize::from(self.rule.max_failure_percent) * window;
        if self.tripped || self.recent.len() < window || !too_many {
            return None;
        }
        self.tripped = true;
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for kind in self.recent.iter().flatten() {
            *kinds.entry(kind).or_default() += 1;
        }
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        Some(format!(
            "failed {} of its last {window} invocations ({})",
            self.failures,
            kinds.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(window: u32, max_failure_percent: u8) -> DemotionRule {
        DemotionRule {
            window,
            max_failure_percent,
        }
    }

    #[test]
    fn a_full_window_past_the_share_demotes_once() {
        let mut window = FailureWindow::new(rule(4, 50));
        assert_eq!(window.observe(Some("trap")), None, "not full yet");
        assert_eq!(window.observe(Some("trap")), None);
        assert_eq!(window.observe(None), None);
        assert_eq!(window.observe(None), None, "2 of 4 is not over 50 %");
        assert_eq!(
            window.observe(Some("timeout")),
            None,
            "the oldest trap left: 2 of 4"
        );
        assert_eq!(window.observe(Some("trap")), None, "the other trap left");
        assert_eq!(
            window.observe(Some("trap")).as_deref(),
            Some("failed 3 of its last 4 invocations (timeout 1, trap 2)")
        );
        assert_eq!(window.observe(Some("trap")), None, "once");
    }

    #[test]
    fn a_hundred_percent_never_demotes() {
        let mut window = FailureWindow::new(rule(2, 100));
        for _ in 0..10 {
            assert_eq!(window.observe(Some("trap")), None);
        }
    }

    #[test]
    fn successes_keep_a_version_in() {
        let mut window = FailureWindow::new(rule(10, 0));
        for _ in 0..100 {
            assert_eq!(window.observe(None), None);
        }
        assert!(window.observe(Some("trap")).is_some(), "0 % allows none");
    }
}

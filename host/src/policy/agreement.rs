//! How a shadow's results compare with those of the version that served,
//! sans-IO: a window over the last calls both ran on.

use std::collections::VecDeque;

use crate::model::{BidDecision, Quality, ShadowAgreement};

/// Calls a deployment's shadow agreement is computed over.
pub const AGREEMENT_WINDOW: usize = 100;

/// One call's comparison of the shadow's result with the served one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparison {
    pub same: bool,
    /// Scorers: how far apart the two scores are.
    pub score_difference: Option<u8>,
    /// Selectors: whether both put the same bid first.
    pub same_first: Option<bool>,
}

/// What a world's result is compared on.
pub trait Compare {
    fn compare(&self, shadow: &Self) -> Comparison;
}

impl Compare for Quality {
    fn compare(&self, shadow: &Self) -> Comparison {
        Comparison {
            same: self == shadow,
            score_difference: Some(self.score.abs_diff(shadow.score)),
            same_first: None,
        }
    }
}

impl Compare for Option<BidDecision> {
    fn compare(&self, shadow: &Self) -> Comparison {
        Comparison {
            same: self == shadow,
            score_difference: None,
            same_first: None,
        }
    }
}

impl Compare for Vec<u32> {
    fn compare(&self, shadow: &Self) -> Comparison {
        Comparison {
            same: self == shadow,
            score_difference: None,
            same_first: Some(self.first() == shadow.first()),
        }
    }
}

/// The last calls' comparisons; `None` for a call the shadow failed on.
#[derive(Debug, Default)]
pub struct AgreementWindow {
    recent: VecDeque<Option<Comparison>>,
}

impl AgreementWindow {
    pub fn observe(&mut self, comparison: Option<Comparison>) {
        self.recent.push_back(comparison);
        if self.recent.len() > AGREEMENT_WINDOW {
            self.recent.pop_front();
        }
    }

    pub fn summary(&self) -> ShadowAgreement {
        let compared: Vec<&Comparison> = self.recent.iter().flatten().collect();
        let share = |count: usize| {
            (!compared.is_empty()).then(|| (count * 100) as f64 / compared.len() as f64)
        };
        let differences: Vec<u32> = compared
            .iter()
            .filter_map(|c| c.score_difference.map(u32::from))
            .collect();
        let firsts: Vec<bool> = compared.iter().filter_map(|c| c.same_first).collect();
        ShadowAgreement {
            calls: u32::try_from(self.recent.len()).unwrap_or(u32::MAX),
            shadow_failed: u32::try_from(self.recent.len() - compared.len()).unwrap_or(u32::MAX),
            same_result_percent: share(compared.iter().filter(|c| c.same).count()),
            mean_score_difference: (!differences.is_empty())
                .then(|| f64::from(differences.iter().sum::<u32>()) / differences.len() as f64),
            same_first_choice_percent: (!firsts.is_empty()).then(|| {
                (firsts.iter().filter(|same| **same).count() * 100) as f64 / firsts.len() as f64
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_compare_by_equality_and_distance() {
        let mut window = AgreementWindow::default();
        let q = |score| Quality {
            score,
            tags: vec![],
        };
        window.observe(Some(q(80).compare(&q(80))));
        window.observe(Some(q(80).compare(&q(60))));
        window.observe(None);
        let summary = window.summary();
        assert_eq!(summary.calls, 3);
        assert_eq!(summary.shadow_failed, 1);
        assert_eq!(summary.same_result_percent, Some(50.0));
        assert_eq!(summary.mean_score_difference, Some(10.0));
        assert_eq!(summary.same_first_choice_percent, None);
    }

    #[test]
    fn orders_compare_by_their_first_choice_too() {
        let mut window = AgreementWindow::default();
        window.observe(Some(vec![1, 0, 2].compare(&vec![1, 2, 0])));
        let summary = window.summary();
        assert_eq!(summary.same_result_percent, Some(0.0));
        assert_eq!(summary.same_first_choice_percent, Some(100.0));
    }

    #[test]
    fn the_window_keeps_the_last_hundred_calls() {
        let mut window = AgreementWindow::default();
        for _ in 0..AGREEMENT_WINDOW {
            window.observe(None);
        }
        window.observe(Some(vec![0].compare(&vec![0])));
        let summary = window.summary();
        assert_eq!(summary.calls, 100);
        assert_eq!(summary.shadow_failed, 99);
    }
}

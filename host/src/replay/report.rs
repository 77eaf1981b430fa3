//! What a replay found, summed over its calls: pure.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::World;

/// Per-call differences a report shows at most.
pub const SAMPLE: usize = 20;

/// One stored call run again through the candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub call_id: String,
    pub score_before: Option<u8>,
    pub score_after: Option<u8>,
    /// The bid that rang first then, and would ring first now.
    pub first_before: Option<String>,
    pub first_after: Option<String>,
    pub payout_before: u64,
    pub payout_after: u64,
    /// The candidate's failure kind, if it failed on this call.
    pub failure: Option<&'static str>,
    /// Bids whose quality floor the new score crossed: (bid, now admitted).
    pub crossings: Vec<(String, bool)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScoreChanges {
    pub unchanged: u64,
    pub up: u64,
    pub down: u64,
    /// Mean of (after − before) over the calls replayed.
    pub mean_change: f64,
    /// Calls by how far their score moved: `-100..-51`, `-50..-11`,
    /// `-10..-1`, `0`, `+1..+10`, `+11..+50`, `+51..+100`.
    pub by_change: BTreeMap<String, u64>,
}

/// Calls whose new score crossed one bid's quality floor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FloorCrossing {
    pub bid_id: String,
    /// Calls the bid was below its floor for and now is not.
    pub admitted: u64,
    /// Calls it was eligible for and now is below its floor.
    pub excluded: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WinnerChange {
    /// The bid that rang first then; none when no bid did.
    pub from: Option<String>,
    pub to: Option<String>,
    pub calls: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CallDiff {
    pub call_id: String,
    pub score_before: Option<u8>,
    pub score_after: Option<u8>,
    pub first_before: Option<String>,
    pub first_after: Option<String>,
    pub failure: Option<String>,
}

/// The report of one replay.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReplayReport {
    pub world: World,
    pub calls_replayed: u64,
    /// Calls in the range recorded before records kept their inputs.
    pub calls_without_inputs: u64,
    /// The candidate's failures by kind (`trap`, `timeout`, …).
    pub failures: BTreeMap<String, u64>,
    /// Scorers only.
    pub score_changes: Option<ScoreChanges>,
    /// Scorers only; the bids whose floor was crossed, by id.
    pub floor_crossings: Vec<FloorCrossing>,
    /// Calls whose first bid to ring changed.
    pub winners_changed: u64,
    /// Those changes by (from, to), most frequent first.
    pub winner_changes: Vec<WinnerChange>,
    /// What buyers paid for the calls, and what they would have: a call
    /// whose first bid changed counts the new bid's amount if the call was
    /// answered for at least that bid's minimum duration (the new buyer is
    /// taken to answer as the old one did).
    pub payout_micros_before: u64,
    pub payout_micros_after: u64,
    /// The first calls that changed (at most 20).
    pub sample: Vec<CallDiff>,
}

/// Sums [`Replayed`] calls into a [`ReplayReport`].
#[derive(Debug)]
pub struct Tally {
    world: World,
    replayed: u64,
    without_inputs: u64,
    failures: BTreeMap<String, u64>,
    scores: ScoreChanges,
    change_sum: i64,
    crossings: BTreeMap<String, (u64, u64)>,
    changes: BTreeMap<(Option<String>, Option<String>), u64>,
    winners_changed: u64,
    payout_before: u64,
    payout_after: u64,
    sample: Vec<CallDiff>,
}

impl Tally {
    pub fn new(world: World) -> Self {
        Tally {
            world,
            replayed: 0,
            without_inputs: 0,
            failures: BTreeMap::new(),
            scores: ScoreChanges::default(),
            change_sum: 0,
            crossings: BTreeMap::new(),
            changes: BTreeMap::new(),
            winners_changed: 0,
            payout_before: 0,
            payout_after: 0,
            sample: Vec::new(),
        }
    }

    pub fn without_inputs(&mut self) {
        self.without_inputs += 1;
    }

    pub fn add(&mut self, call: Replayed) {
        self.replayed += 1;
        if let Some(kind) = call.failure {
            *self.failures.entry(kind.to_owned()).or_default() += 1;
        }
        if let (Some(before), Some(after)) = (call.score_before, call.score_after) {
            let change = i64::from(after) - i64::from(before);
            self.change_sum += change;
            match change.cmp(&0) {
                std::cmp::Ordering::Equal => self.scores.unchanged += 1,
                std::cmp::Ordering::Greater => self.scores.up += 1,
                std::cmp::Ordering::Less => self.scores.down += 1,
            }
            *self
                .scores
                .by_change
                .entry(bucket(change).to_owned())
                .or_default() += 1;
        }
        for (bid, admitted) in &call.crossings {
            let entry = self.crossings.entry(bid.clone()).or_default();
            if *admitted {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
        self.payout_before += call.payout_before;
        self.payout_after += call.payout_after;
        let changed = call.first_before != call.first_after;
        if changed {
            self.winners_changed += 1;
            *self
                .changes
                .entry((call.first_before.clone(), call.first_after.clone()))
                .or_default() += 1;
        }
        let scored_otherwise = call.score_before != call.score_after;
        if (changed || scored_otherwise || call.failure.is_some()) && self.sample.len() < SAMPLE {
            self.sample.push(CallDiff {
                call_id: call.call_id,
                score_before: call.score_before,
                score_after: call.score_after,
                first_before: call.first_before,
                first_after: call.first_after,
                failure: call.failure.map(str::to_owned),
            });
        }
    }

    pub fn report(self) -> ReplayReport {
        let scorer = self.world == World::Scorer;
        let mut winner_changes: Vec<WinnerChange> = self
            .changes
            .into_iter()
            .map(|((from, to), calls)| WinnerChange { from, to, calls })
            .collect();
        winner_changes.sort_by_key(|c| std::cmp::Reverse(c.calls));
        let mut scores = self.scores;
        if self.replayed > 0 {
            scores.mean_change = self.change_sum as f64 / self.replayed as f64;
        }
        ReplayReport {
            world: self.world,
            calls_replayed: self.replayed,
            calls_without_inputs: self.without_inputs,
            failures: self.failures,
            score_changes: scorer.then_some(scores),
            floor_crossings: self
                .crossings
                .into_iter()
                .map(|(bid_id, (admitted, excluded))| FloorCrossing {
                    bid_id,
                    admitted,
                    excluded,
                })
                .collect(),
            winners_changed: self.winners_changed,
            winner_changes,
            payout_micros_before: self.payout_before,
            payout_micros_after: self.payout_after,
            sample: self.sample,
        }
    }
}

fn bucket(change: i64) -> &'static str {
    match change {
        i64::MIN..=-51 => "-100..-51",
        -50..=-11 => "-50..-11",
        -10..=-1 => "-10..-1",
        0 => "0",
        1..=10 => "+1..+10",
        11..=50 => "+11..+50",
        _ => "+51..+100",
    }
}

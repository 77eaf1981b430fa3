//! `plugboard replay`: stored calls through a candidate component, on a
//! data directory no server holds (a stopped node's, or a copy of it).

use std::io::{IsTerminal, Write};
use std::path::Path;

use super::{CliError, ReplayArgs};
use crate::policy::{CompiledPolicy, Limits, PolicyEngine};
use crate::replay::{KvSource, ReplayRange, ReplayReport, replay};
use crate::store::Store;

pub fn run_replay(args: &ReplayArgs) -> Result<String, CliError> {
    let bytes = super::policy::read(&args.policy)?;
    let range = ReplayRange {
        campaign_id: args.campaign.clone(),
        since_ms: args.since.map(|t| t.as_millisecond()),
        until_ms: args.until.map(|t| t.as_millisecond()),
        limit: args.limit,
        newest: false,
        kv: KvSource::Campaigns,
    };
    let engine = PolicyEngine::new(Limits::default())?;
    let candidate = CompiledPolicy::load(&engine, args.world, &bytes, None)?;
    let store = open(&args.data_dir)?;
    let on_terminal = std::io::stderr().is_terminal();
    let at_most = store
        .calls_received_between(range.since_ms, range.until_ms)
        .min(range.limit) as u64;
    let mut progress = |done: u64| {
        if on_terminal {
            eprint!("\r{}", progress_bar(done, at_most));
            let _ = std::io::stderr().flush();
        }
    };
    let report = replay(&store, &candidate, &range, &|_| true, &mut progress)?;
    if on_terminal {
        eprintln!();
    }
    if args.json {
        return Ok(serde_json::to_string_pretty(&report).unwrap_or_default());
    }
    Ok(render(&report))
}

/// `[#####.....] 500 / 1000 calls`; the total counts the range's calls of
/// every campaign, so a campaign's replay may end short of it.
fn progress_bar(done: u64, total: u64) -> String {
    const WIDTH: u64 = 30;
    let filled = (done.min(total) * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH) as usize;
    format!(
        "[{}{}] {done} / {total} calls",
        "#".repeat(filled),
        ".".repeat(WIDTH as usize - filled)
    )
}

/// The store of `data_dir`, never created here: replay reads what a server
/// wrote.
fn open(data_dir: &Path) -> Result<Store, CliError> {
    let dir = data_dir.join("store");
    if !dir.exists() {
        return Err(CliError::NoStore(data_dir.to_owned()));
    }
    Store::open(&dir).map_err(|e| {
        if e.to_string().contains("lock") {
            CliError::StoreInUse(data_dir.to_owned())
        } else {
            CliError::Store(e)
        }
    })
}

fn render(report: &ReplayReport) -> String {
    let mut out = format!(
        "calls replayed: {} ({} recorded before calls kept their inputs, skipped)\n",
        report.calls_replayed, report.calls_without_inputs
    );
    if report.failures.is_empty() {
        out.push_str("candidate failures: none\n");
    } else {
        let kinds: Vec<String> = report
            .failures
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        out.push_str(&format!("candidate failures: {}\n", kinds.join(", ")));
    }
    if let Some(scores) = &report.score_changes {
        out.push_str(&format!(
            "scores: {} unchanged, {} up, {} down, mean change {:+.1}\n",
            scores.unchanged, scores.up, scores.down, scores.mean_change
        ));
        for (bucket, calls) in &scores.by_change {
            out.push_str(&format!("  {bucket:>10}  {calls}\n"));
        }
        for crossing in &report.floor_crossings {
            out.push_str(&format!(
                "  bid {}: {} calls now above its quality floor, {} now below\n",
                crossing.bid_id, crossing.admitted, crossing.excluded
            ));
        }
    }
    out.push_str(&format!(
        "first bid to ring changed on {} calls\n",
        report.winners_changed
    ));
    let none = || "no bid".to_owned();
    for change in &report.winner_changes {
        out.push_str(&format!(
            "  {} → {}: {}\n",
            change.from.clone().unwrap_or_else(none),
            change.to.clone().unwrap_or_else(none),
            change.calls
        ));
    }
    out.push_str(&format!(
        "payout: {} → {} micros\n",
        report.payout_micros_before, report.payout_micros_after
    ));
    for diff in &report.sample {
        out.push_str(&format!(
            "  {}: score {} → {}, first {} → {}{}\n",
            diff.call_id,
            diff.score_before.map_or("-".to_owned(), |s| s.to_string()),
            diff.score_after.map_or("-".to_owned(), |s| s.to_string()),
            diff.first_before.clone().unwrap_or_else(none),
            diff.first_after.clone().unwrap_or_else(none),
            diff.failure
                .as_deref()
                .map_or(String::new(), |f| format!(" ({f})"))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::progress_bar;

    #[test]
    fn the_bar_fills_with_the_calls_done() {
        assert_eq!(
            progress_bar(0, 4),
            format!("[{}] 0 / 4 calls", ".".repeat(30))
        );
        assert_eq!(
            progress_bar(2, 4),
            format!("[{}{}] 2 / 4 calls", "#".repeat(15), ".".repeat(15))
        );
        assert_eq!(
            progress_bar(9, 4),
            format!("[{}] 9 / 4 calls", "#".repeat(30))
        );
        assert_eq!(
            progress_bar(0, 0),
            format!("[{}] 0 / 0 calls", "#".repeat(30))
        );
    }
}

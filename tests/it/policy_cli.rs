//! The `plugboard policy` commands, run as a user runs them.

use std::process::Command;

use tests::{plugboard_bin, target_dir};

fn plugboard(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(plugboard_bin())
        .args(args)
        .output()
        .expect("plugboard runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn policy_file(name: &str) -> String {
    target_dir()
        .join("policies")
        .join(format!("{name}.wasm"))
        .display()
        .to_string()
}

fn sample_file(name: &str) -> String {
    format!(
        "{}/../example-policies/{name}/sample.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn check_accepts_each_example_policy_for_its_world() {
    for (name, world) in [
        ("geo-history-scorer", "scorer"),
        ("state-hour-bidder", "bidder"),
        ("answer-rate-selector", "selector"),
    ] {
        let (ok, stdout, stderr) =
            plugboard(&["policy", "check", &policy_file(name), "--world", world]);
        assert!(ok, "{name}: {stderr}");
        assert!(stdout.starts_with("ok: "), "{stdout}");
        assert!(
            stdout.contains(&format!("valid {world} policy")),
            "{stdout}"
        );
    }
}

#[test]
fn check_refuses_the_wrong_world_with_one_line_and_a_failure_code() {
    let (ok, stdout, stderr) = plugboard(&[
        "policy",
        "check",
        &policy_file("state-hour-bidder"),
        "--world",
        "scorer",
    ]);
    assert!(!ok);
    assert!(stdout.is_empty());
    assert_eq!(
        stderr,
        "error: the component does not implement the scorer world: it exports `bid` (a bidder policy?) instead of `score`\n"
    );
}

#[test]
fn run_prints_result_cost_and_logs_for_each_example_policy() {
    for (name, world, expected) in [
        ("geo-history-scorer", "scorer", r#""score":"#),
        ("state-hour-bidder", "bidder", r#""min_duration_s":90"#),
        ("answer-rate-selector", "selector", "[1,0,2]"),
    ] {
        let (ok, stdout, stderr) = plugboard(&[
            "policy",
            "run",
            &policy_file(name),
            "--world",
            world,
            "--input",
            &sample_file(name),
        ]);
        assert!(ok, "{name}: {stderr}");
        for line in ["result:", "fuel:", "time:", "memory:", "logs:"] {
            assert!(stdout.contains(line), "{name} prints {line}: {stdout}");
        }
        assert!(stdout.contains(expected), "{name}: {stdout}");
    }
}

#[test]
fn run_json_output_is_machine_readable() {
    let (ok, stdout, stderr) = plugboard(&[
        "policy",
        "run",
        &policy_file("geo-history-scorer"),
        "--world",
        "scorer",
        "--input",
        &sample_file("geo-history-scorer"),
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["world"], "scorer");
    assert!(report["result"]["score"].as_u64().is_some_and(|s| s <= 100));
    assert!(report["fuel_used"].as_u64().is_some_and(|f| f > 0));
    assert!(report["memory_peak_bytes"].as_u64().is_some_and(|m| m > 0));
    assert_eq!(report["logs"][0]["message"], "scored");
}

#[test]
fn run_reports_a_policy_failure_and_exits_non_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("call.json");
    let call = serde_json::json!({ "call": {
        "id": "c", "campaign_id": "spin", "caller": "+14155550123", "called": "+18005550100",
        "time": { "unix_seconds": 0, "local_weekday": 0, "local_hour": 9 }
    }});
    std::fs::write(&input, call.to_string()).expect("write input");
    let guest = target_dir().join("test-guests/hostile-scorer.wasm");
    let (ok, _, stderr) = plugboard(&[
        "policy",
        "run",
        &guest.display().to_string(),
        "--world",
        "scorer",
        "--input",
        &input.display().to_string(),
        "--fuel",
        "100000",
    ]);
    assert!(!ok);
    assert_eq!(stderr, "error: policy ran out of fuel\n");
}

/// Runs the example scorer on an input file holding `input`, with `extra`
/// arguments; success, stdout, stderr.
fn run_scorer_with(input: &str, extra: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("input.json");
    std::fs::write(&path, input).expect("write input");
    let path = path.display().to_string();
    let scorer = policy_file("geo-history-scorer");
    let mut args = vec![
        "policy", "run", &scorer, "--world", "scorer", "--input", &path,
    ];
    args.extend_from_slice(extra);
    plugboard(&args)
}

/// As [`run_scorer_with`], no extra arguments; success and stderr.
fn run_scorer_on(input: &str) -> (bool, String) {
    let (ok, _, stderr) = run_scorer_with(input, &[]);
    (ok, stderr)
}

#[test]
fn run_refuses_input_missing_what_the_world_needs() {
    let (ok, stderr) = run_scorer_on("{}");
    assert!(!ok);
    assert!(
        stderr.starts_with("error: bad input") && stderr.contains("a scorer needs `call`"),
        "{stderr}"
    );
}

#[test]
fn run_refuses_malformed_json_with_its_position() {
    let (ok, stderr) = run_scorer_on("{\"call\": [");
    assert!(!ok);
    assert!(stderr.contains("line 1 column"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_sample_names_only_what_it_sets_and_takes_attribution_as_an_object_or_pairs() {
    let mut reports = Vec::new();
    for (name, input) in [
        (
            "object",
            r#"{"call": {"caller": "+14155550123", "attribution": {"utm_source": "google"}}}"#,
        ),
        (
            "pairs",
            r#"{"call": {"caller": "+14155550123", "attribution": [["utm_source", "google"]]}}"#,
        ),
    ] {
        let (ok, stdout, stderr) = run_scorer_with(input, &["--json"]);
        assert!(ok, "{name}: {stderr}");
        let mut report: serde_json::Value = serde_json::from_str(&stdout).expect("json report");
        report
            .as_object_mut()
            .expect("a report")
            .remove("elapsed_us");
        reports.push(report);
    }
    assert_eq!(reports[0], reports[1]);
    assert!(reports[0]["result"]["score"].is_u64(), "{}", reports[0]);
    let (ok, stderr) = run_scorer_on(r#"{"call": {"attribution": {"utm_source": 7}}}"#);
    assert!(
        !ok && stderr.contains("attribution `utm_source` must be a string"),
        "{stderr}"
    );
}

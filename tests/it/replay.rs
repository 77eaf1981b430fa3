//! Replay: stored calls through a candidate version, in the library and as
//! `plugboard replay` on a copy of a data directory.

use std::path::Path;
use std::process::Command;

use host::model::{CallRecord, World};
use host::policy::{CompiledPolicy, Limits, PolicyEngine};
use host::replay::{KvSource, ReplayRange, ReplayReport, replay};
use host::store::Store;
use serde_json::json;
use tests::call_lab::CallLab;
use tests::{example_policy, plugboard_bin, test_guest};

/// Scores 0 with the hostile scorer (`tests/guests/hostile-scorer`), and
/// ends in 0, which puts the cheapest bid first with the test selector.
const NUMBER: &str = "+18005550670";

fn compiled(world: World, bytes: &[u8]) -> CompiledPolicy {
    let engine = PolicyEngine::new(Limits::default()).expect("engine");
    CompiledPolicy::load(&engine, world, bytes, None).expect("compiles")
}

fn replayed(lab: &CallLab, world: World, bytes: &[u8]) -> ReplayReport {
    let range = ReplayRange {
        campaign_id: Some(lab.campaign_id.clone()),
        limit: 1000,
        ..ReplayRange::default()
    };
    replay(
        &lab.api.state.store,
        &compiled(world, bytes),
        &range,
        &|_| true,
        &mut |_| {},
    )
    .expect("replays")
}

/// Calls to this number fail every other time with the hostile scorer,
/// which counts them in its key-value store.
const EVERY_OTHER: &str = "+18005550668";

/// The hostile scorer replayed on copies of `record` to [`EVERY_OTHER`],
/// in a store of their own whose scorer namespace holds `seen`.
fn replay_on_a_counter(record: &CallRecord, seen: Option<u8>, range: ReplayRange) -> ReplayReport {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store");
    let calls: Vec<CallRecord> = (0..3)
        .map(|i| {
            let mut call = record.clone();
            call.id = format!("call_counter_{i}");
            call.received_at_ms += i;
            let inputs = call.inputs.as_mut().expect("inputs kept");
            inputs.call.called = EVERY_OTHER.to_owned();
            call
        })
        .collect();
    store.record_calls(&calls).expect("recorded");
    let namespace = Store::kv_namespace("pol_counter", &record.tenant_id);
    if let Some(seen) = seen {
        assert!(
            store
                .kv_put(&namespace, "every-other", &[seen], 1 << 20)
                .expect("kv")
        );
    }
    let report = replay(
        &store,
        &compiled(World::Scorer, &test_guest("hostile-scorer.wasm")),
        &range,
        &|_| true,
        &mut |_| {},
    )
    .expect("replays");
    assert_eq!(
        store.kv_get(&namespace, "every-other").expect("kv"),
        seen.map(|s| vec![s]),
        "what the candidate wrote is dropped"
    );
    report
}

/// Each replayed call reads the same snapshot of the policy's store, and
/// never what an earlier replayed call wrote.
fn replays_read_a_snapshot(record: &CallRecord) {
    let of_counter = |newest: bool| ReplayRange {
        limit: 10,
        newest,
        kv: KvSource::Policy {
            policy_id: "pol_counter".to_owned(),
            owner_tenant: record.tenant_id.clone(),
        },
        ..ReplayRange::default()
    };
    let odd = replay_on_a_counter(record, Some(1), of_counter(false));
    assert_eq!(odd.calls_replayed, 3);
    assert_eq!(odd.failures.get("trap"), Some(&3), "{odd:?}");
    let even = replay_on_a_counter(record, Some(2), of_counter(false));
    assert!(even.failures.is_empty(), "{even:?}");
    let unscored = replay_on_a_counter(
        record,
        Some(1),
        ReplayRange {
            kv: KvSource::Empty,
            ..of_counter(false)
        },
    );
    assert!(
        unscored.failures.is_empty(),
        "an empty store each call: {unscored:?}"
    );
    let newest = replay_on_a_counter(
        record,
        Some(1),
        ReplayRange {
            limit: 2,
            ..of_counter(true)
        },
    );
    let ids: Vec<&str> = newest.sample.iter().map(|d| d.call_id.as_str()).collect();
    assert_eq!(
        ids,
        ["call_counter_1", "call_counter_2"],
        "the last two, oldest first"
    );
}

fn plugboard(args: &[&str], data_dir: &Path) -> (bool, String, String) {
    let out = Command::new(plugboard_bin())
        .arg("replay")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("plugboard runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_is_judged_on_stored_calls_with_no_side_effect() {
    let lab = CallLab::start().await;
    let marketer = lab.marketer_key.clone();
    let (scorer, _) = lab
        .deploy_new(
            &marketer,
            "scorer",
            example_policy("geo-history-scorer"),
            "fallback",
        )
        .await;
    lab.update_campaign(json!({"numbers": [NUMBER], "scorer_policy_id": scorer}))
        .await;
    let buyer = lab.buyer("buyer_answers", 4).await;
    let target = lab.target(buyer.port, 20, 10).await;
    let bid = |amount: u64| {
        json!({"campaign_id": lab.campaign_id, "target_id": target, "amount_micros": amount,
               "min_quality": 10, "min_duration_s": 0})
    };
    let rich = lab.bid_with(bid(30_000_000)).await;
    let cheap = lab.bid_with(bid(10_000_000)).await;
    lab.carrier_to(NUMBER, "caller_hangs_up", 4, &["-d", "100", "-l", "1"])
        .await
        .assert_ok();
    buyer.finish().await.assert_ok();
    let records = lab.wait_for_records(4).await;
    assert!(
        records.iter().all(|r| r.payout_micros == 30_000_000),
        "{records:?}"
    );

    // The active version itself: nothing changes (replay is deterministic).
    let same = replayed(&lab, World::Scorer, &example_policy("geo-history-scorer"));
    assert_eq!(same.calls_replayed, 4);
    assert_eq!(same.score_changes.as_ref().map(|s| s.unchanged), Some(4));
    assert_eq!(same.winners_changed, 0);
    assert_eq!(same.payout_micros_after, same.payout_micros_before);
    assert!(
        same.sample.is_empty() && same.failures.is_empty(),
        "{same:?}"
    );

    // A scorer that scores 0: every call falls below both bids' floor.
    let zero = replayed(&lab, World::Scorer, &test_guest("hostile-scorer.wasm"));
    assert_eq!(zero.calls_replayed, 4);
    let scores = zero.score_changes.as_ref().expect("a scorer's report");
    assert_eq!((scores.down, scores.up, scores.unchanged), (4, 0, 0));
    assert_eq!(zero.winners_changed, 4);
    assert_eq!(zero.winner_changes.len(), 1);
    assert_eq!(zero.winner_changes[0].from.as_deref(), Some(rich.as_str()));
    assert_eq!(zero.winner_changes[0].to, None);
    assert_eq!(zero.payout_micros_before, 120_000_000);
    assert_eq!(zero.payout_micros_after, 0);
    let crossed: Vec<(&str, u64, u64)> = zero
        .floor_crossings
        .iter()
        .map(|c| (c.bid_id.as_str(), c.admitted, c.excluded))
        .collect();
    let mut expected = vec![(rich.as_str(), 0, 4), (cheap.as_str(), 0, 4)];
    expected.sort();
    assert_eq!(crossed, expected);
    assert_eq!(zero.sample.len(), 4);
    assert_eq!(zero.sample[0].score_after, Some(0));

    // A selector putting the cheapest first, and a bidder module bidding
    // 50 USD on every offer: each takes every call from the rich bid.
    let cheapest = replayed(&lab, World::Selector, &test_guest("test-selector.wasm"));
    assert_eq!(cheapest.winners_changed, 4);
    assert_eq!(
        cheapest.winner_changes[0].to.as_deref(),
        Some(cheap.as_str())
    );
    assert_eq!(cheapest.payout_micros_after, 40_000_000);
    assert!(cheapest.score_changes.is_none());
    let outbidding = replayed(&lab, World::Bidder, &test_guest("echo-bidder.wasm"));
    assert_eq!(outbidding.winners_changed, 4);
    assert_eq!(
        outbidding.winner_changes[0].to.as_deref(),
        Some("candidate")
    );
    assert_eq!(outbidding.payout_micros_after, 200_000_000);

    // Nothing the candidates did reached the store.
    let after: Vec<_> = lab.records();
    assert_eq!(after.len(), 4);
    assert_eq!(after, records);
    replays_read_a_snapshot(&records[0]);

    // The command line, on a copy of the data directory; the live one is
    // held by the running server and is refused with a clear line.
    lab.api.state.store.flush().expect("flush");
    let hostile = tests::target_dir().join("test-guests/hostile-scorer.wasm");
    let hostile = hostile.to_str().expect("utf-8 path");
    let copy = tempfile::tempdir().expect("temp dir");
    copy_dir(&lab.api.data_dir, copy.path());
    let (ok, stdout, stderr) = plugboard(
        &["--policy", hostile, "--world", "scorer", "--json"],
        copy.path(),
    );
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["calls_replayed"], 4, "{report}");
    assert_eq!(report["winners_changed"], 4);
    assert_eq!(report["payout_micros_after"], 0);
    let (ok, text, stderr) = plugboard(&["--policy", hostile, "--world", "scorer"], copy.path());
    assert!(ok, "{stderr}");
    assert!(text.contains("calls replayed: 4"), "{text}");
    assert!(
        text.contains("first bid to ring changed on 4 calls"),
        "{text}"
    );
    assert!(text.contains("payout: 120000000 → 0 micros"), "{text}");

    let refusals = [
        (
            vec!["--world", "bidder"],
            "does not implement the bidder world",
        ),
        (
            vec!["--world", "scorer", "--campaign", "cmp_nope"],
            "no campaign cmp_nope",
        ),
        (
            vec!["--world", "scorer", "--since", "2099-01-01T00:00:00Z"],
            "no stored call is in that range",
        ),
        (
            vec![
                "--world",
                "scorer",
                "--since",
                "2026-12-02T00:00:00Z",
                "--until",
                "2026-12-01T00:00:00Z",
            ],
            "the range ends before it starts",
        ),
    ];
    for (args, says) in refusals {
        let mut all = vec!["--policy", hostile];
        all.extend(args);
        let (ok, _, stderr) = plugboard(&all, copy.path());
        assert!(!ok && stderr.contains(says), "{all:?}: {stderr}");
    }

    // The same through the API, for an uploaded version of the scorer.
    let (status, uploaded) = lab
        .api
        .raw(
            "POST",
            &format!("/v1/policies/{scorer}/versions"),
            Some(&marketer),
            Some(test_guest("hostile-scorer.wasm")),
            "application/wasm",
        )
        .await;
    assert_eq!(status, 201, "{uploaded}");
    let version = tests::str_field(&uploaded, "version");
    let path = format!("/v1/policies/{scorer}/versions/{version}/replay");
    let ask = |key: String, body: serde_json::Value| {
        let (api, path) = (&lab.api, path.clone());
        async move { api.replay(&path, &key, body).await }
    };
    let (status, job) = ask(marketer.clone(), json!({"campaign_id": lab.campaign_id})).await;
    assert_eq!(
        (status, job["state"].as_str()),
        (202, Some("done")),
        "{job}"
    );
    assert_eq!(job["calls_done"], 4);
    assert_eq!(job["version"], version.as_str());
    let through_api = &job["report"];
    assert_eq!(through_api["calls_replayed"], 4);
    assert_eq!(through_api["winners_changed"], 4);
    assert_eq!(through_api["payout_micros_before"], 120_000_000);
    assert_eq!(through_api["payout_micros_after"], 0);
    let (status, _) = ask(lab.bidder_key.clone(), json!({})).await;
    assert_eq!(
        status, 403,
        "a bidder learns nothing of the calls it did not win"
    );
    let (_, rival) = lab.api.tenant("rival", "marketer").await;
    let (status, body) = ask(rival.clone(), json!({})).await;
    assert_eq!(status, 404, "{body}");
    let own_job = format!("/v1/replays/{}", job["id"].as_str().expect("id"));
    for key in [&rival, &lab.bidder_key] {
        let (status, body) = lab.api.call("GET", &own_job, Some(key), None).await;
        assert!(
            status == 404 || status == 403,
            "another's job: {status} {body}"
        );
    }
    for (body, code) in [
        (json!({"limit": 0}), "request.invalid_field"),
        (
            json!({"campaign_id": "cmp_nope"}),
            "request.unknown_campaign",
        ),
        (json!({"since": 200, "until": 100}), "request.invalid_field"),
    ] {
        let (status, reply) = ask(marketer.clone(), body.clone()).await;
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (422, Some(code)),
            "{body}: {reply}"
        );
    }
    // An empty range is found by the job, which says so.
    let (status, empty) = ask(marketer.clone(), json!({"since": 4_102_444_800_i64})).await;
    assert_eq!(
        (status, empty["state"].as_str()),
        (202, Some("failed")),
        "{empty}"
    );
    assert_eq!(empty["error"]["code"], "replay.empty", "{empty}");
    let (status, reply) = lab
        .api
        .call(
            "POST",
            &format!("/v1/policies/{scorer}/versions/0000000000000000/replay"),
            Some(&marketer),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 404, "{reply}");
    assert_eq!(lab.records(), records, "replays store nothing");

    // The replay gate: the zero scorer changes every winner, so it may not
    // serve under a 50 % gate; the refusal names the gate and changes
    // nothing. A gate it passes lets it through.
    let deployment = format!("/v1/policies/{scorer}/deployment");
    let (_, before) = lab
        .api
        .call("GET", &deployment, Some(&marketer), None)
        .await;
    let gated = |percent: u64| {
        json!({"active": version, "failure_mode": "fallback",
               "replay_gate": {"calls": 4, "max_winners_changed_percent": percent}})
    };
    let (status, refused) = lab
        .api
        .call("PUT", &deployment, Some(&marketer), Some(gated(50)))
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "deployment.replay_gate_failed");
    let says = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        says.contains("replay gate") && says.contains("4 of the last 4 calls"),
        "{says}"
    );
    let (_, unchanged) = lab
        .api
        .call("GET", &deployment, Some(&marketer), None)
        .await;
    assert_eq!(unchanged, before);
    let (status, body) = lab
        .api
        .call(
            "PUT",
            &deployment,
            Some(&marketer),
            Some(json!({"active": version,
            "replay_gate": {"calls": 0, "max_winners_changed_percent": 5}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, passed) = lab
        .api
        .call("PUT", &deployment, Some(&marketer), Some(gated(100)))
        .await;
    assert_eq!(status, 200, "{passed}");
    assert_eq!(passed["active"], version.as_str());
    let (bidder_policy, _) = lab
        .deploy_new(
            &lab.bidder_key,
            "bidder",
            test_guest("echo-bidder.wasm"),
            "fallback",
        )
        .await;
    let (status, body) = lab
        .api
        .call(
            "PUT",
            &format!("/v1/policies/{bidder_policy}/deployment"),
            Some(&lab.bidder_key),
            Some(json!({"active": null, "replay_gate": {"max_winners_changed_percent": 5}})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("auth.forbidden_role")),
        "a bidder's replay would read rival bids: {body}"
    );

    let (ok, _, stderr) = plugboard(
        &["--policy", hostile, "--world", "scorer"],
        &lab.api.data_dir,
    );
    assert!(
        !ok && stderr.contains("in use by a running server"),
        "{stderr}"
    );
    let (ok, _, stderr) = plugboard(
        &["--policy", hostile, "--world", "scorer"],
        &copy.path().join("nothing"),
    );
    assert!(!ok && stderr.contains("holds no store"), "{stderr}");
    lab.stop().await;
}

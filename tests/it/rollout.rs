//! Safe rollout: what a call record keeps of its policies' inputs and of
//! a shadow's results, so that another version can be judged on real calls,
//! and a canary that fails too often taken out without anyone watching.

use serde_json::json;
use tests::call_lab::{CALLER, CallLab};
use tests::{example_policy, str_field, test_guest};

/// Calls to this number make the hostile scorer fail every other time.
const EVERY_OTHER: &str = "+18005550668";

/// The example scorer and the hostile one as two versions of one policy
/// of the lab's marketer, deployed as `deployment` asks (`STEADY` and
/// `HOSTILE` in it stand for the two versions) and scoring the campaign,
/// which `EVERY_OTHER` is the number of: the policy, the two versions and
/// its deployment's path.
async fn two_versions(
    lab: &CallLab,
    deployment: serde_json::Value,
) -> (String, String, String, String) {
    two_versions_of(lab, test_guest("hostile-scorer.wasm"), deployment).await
}

/// As [`two_versions`], with `second` as the second version.
async fn two_versions_of(
    lab: &CallLab,
    second: Vec<u8>,
    deployment: serde_json::Value,
) -> (String, String, String, String) {
    let marketer = &lab.marketer_key;
    let uploaded = lab
        .api
        .upload(marketer, "scorer", example_policy("geo-history-scorer"))
        .await;
    let (policy, steady) = (str_field(&uploaded, "id"), str_field(&uploaded, "version"));
    let (status, hostile) = lab
        .api
        .raw(
            "POST",
            &format!("/v1/policies/{policy}/versions"),
            Some(marketer),
            Some(second),
            "application/wasm",
        )
        .await;
    assert_eq!(status, 201, "{hostile}");
    let hostile = str_field(&hostile, "version");
    let body = deployment
        .to_string()
        .replace("STEADY", &steady)
        .replace("HOSTILE", &hostile);
    let path = format!("/v1/policies/{policy}/deployment");
    let (status, body) = lab
        .api
        .call(
            "PUT",
            &path,
            Some(marketer),
            Some(serde_json::from_str(&body).expect("json")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    lab.update_campaign(json!({"numbers": [EVERY_OTHER], "scorer_policy_id": policy}))
        .await;
    (policy, steady, hostile, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_record_keeps_what_each_policy_saw_and_shows_it_to_the_marketer_alone() {
    let lab = CallLab::start().await;
    let pooled = "+18005550201";
    lab.visitor_on(pooled, json!({"utm_source": "google", "gclid": "click-1"}))
        .await;
    lab.update_campaign(json!({"shared_attribution_keys": ["utm_source"]}))
        .await;
    let cheap = lab.buyer("buyer_answers", 1).await;
    let rich = lab.buyer("buyer_answers", 1).await;
    let cheap_target = lab.target(cheap.port, 20, 10).await;
    let rich_target = lab.target(rich.port, 20, 10).await;
    let cheap_bid = lab.bid(&cheap_target, 10_000_000, 0).await;
    let rich_bid = lab.bid(&rich_target, 30_000_000, 0).await;
    let fussy_bid = lab.bid(&cheap_target, 50_000_000, 90).await;

    lab.carrier_to(pooled, "caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    rich.finish().await.assert_ok();
    let record = lab.wait_for_records(1).await.remove(0);
    let inputs = record.inputs.as_ref().expect("inputs are kept");

    assert_eq!(inputs.call.id, record.id);
    assert_eq!(inputs.call.caller, CALLER);
    assert_eq!(inputs.call.called, pooled);
    assert_eq!(inputs.call.caller_geography.region, "CA");
    assert!(
        inputs.call.headers.iter().any(|h| h.name == "Call-ID"),
        "{:?}",
        inputs.call.headers
    );
    assert_eq!(inputs.call.attribution.len(), 2, "the scorer sees it all");
    assert_eq!(inputs.caller_history.calls_seen, 0, "a first call");
    // The offer is the redacted one: shared attribution only, no caller.
    let offer = inputs.offer(&record);
    assert_eq!(offer.call_id, record.id);
    assert_eq!(offer.quality.score, 50);
    assert_eq!(
        offer.attribution,
        [("utm_source".to_owned(), "google".to_owned())]
    );
    // The candidates in the auction's order; the bid above the call's
    // quality is not one.
    let candidates: Vec<&str> = inputs
        .candidates
        .iter()
        .map(|c| c.bid_id.as_str())
        .collect();
    assert_eq!(candidates, [rich_bid.as_str(), cheap_bid.as_str()]);
    assert!(!candidates.contains(&fussy_bid.as_str()));
    assert_eq!(inputs.bids(&record)[0].amount_micros, 30_000_000);
    assert_eq!(inputs.bids(&record)[0].min_quality, 0);
    assert_eq!(inputs.candidates_omitted, 0);

    let seen_by_marketer = lab.record_through_api(&record.id).await;
    assert_eq!(seen_by_marketer["inputs"]["call"]["caller"], CALLER);
    assert_eq!(
        seen_by_marketer["inputs"]["shared_attribution_keys"],
        json!(["utm_source"])
    );
    assert_eq!(
        seen_by_marketer["inputs"]["candidates"][0]["bid_id"],
        json!(rich_bid)
    );
    let (status, seen_by_bidder) = lab
        .api
        .call(
            "GET",
            &format!("/v1/calls/{}", record.id),
            Some(&lab.bidder_key),
            None,
        )
        .await;
    assert_eq!(status, 200, "{seen_by_bidder}");
    assert!(seen_by_bidder.get("inputs").is_none(), "{seen_by_bidder}");
    assert_eq!(str_field(&seen_by_bidder, "id"), record.id);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_fails_too_often_is_taken_out_and_the_next_calls_use_the_active_version() {
    let lab = CallLab::start().await;
    let marketer = lab.marketer_key.clone();
    let (policy, steady, canary, deployment) = two_versions(
        &lab,
        json!({
            "active": "STEADY",
            "canary": {"version": "HOSTILE", "percent": 100},
            "failure_mode": "fallback",
            "demotion": {"window": 10, "max_failure_percent": 40},
        }),
    )
    .await;
    let (buyer, _) = lab.bidding_buyer("buyer_answers", 16).await;

    lab.carrier_to(EVERY_OTHER, "caller_hangs_up", 16, &["-d", "10", "-l", "1"])
        .await
        .assert_ok();
    buyer.finish().await.assert_ok();
    let mut records = lab.wait_for_records(16).await;
    records.sort_by_key(|r| r.received_at_ms);
    assert!(
        records
            .iter()
            .all(|r| r.outcome == host::model::CallOutcome::Answered),
        "a failing policy loses no call"
    );
    // The canary served every call until its tenth failed it out: five of
    // its ten runs had trapped, more than 40 %.
    let served: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            let run = &r.trace.policies[0];
            (run.role.clone(), run.outcome.clone())
        })
        .collect();
    let canary_runs: Vec<&str> = served[..10].iter().map(|(_, o)| o.as_str()).collect();
    assert!(
        served[..10].iter().all(|(role, _)| role == "canary"),
        "{served:?}"
    );
    assert_eq!(
        canary_runs,
        [
            "ok", "trap", "ok", "trap", "ok", "trap", "ok", "trap", "ok", "trap"
        ]
    );
    assert!(
        served[10..]
            .iter()
            .all(|(role, outcome)| role == "active" && outcome == "ok"),
        "{served:?}"
    );

    let (status, after) = lab
        .api
        .call("GET", &deployment, Some(&marketer), None)
        .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["active"], json!(steady));
    assert_eq!(after["canary"], json!(null), "{after}");
    assert_eq!(after["demotions"][0]["version"], json!(canary));
    assert_eq!(after["demotions"][0]["role"], "canary");
    assert_eq!(
        after["demotions"][0]["reason"],
        "failed 5 of its last 10 invocations (trap 5)"
    );
    let metrics = lab.api.metrics().await;
    assert!(
        metrics.contains(&format!(
            "plugboard_policy_demotions_total{{policy=\"{policy}\",policy_name=\"scorer\",version=\"{canary}\",role=\"canary\"}} 1"
        )),
        "{metrics}"
    );
    lab.stop().await;
}

#[tokio::test]
async fn a_demotion_rule_out_of_bounds_is_refused_and_changes_nothing() {
    let api = tests::TestApi::new().await;
    let (_, marketer) = api.tenant("acme", "marketer").await;
    let uploaded = api
        .upload(&marketer, "scorer", example_policy("geo-history-scorer"))
        .await;
    let (policy, version) = (str_field(&uploaded, "id"), str_field(&uploaded, "version"));
    let deployment = format!("/v1/policies/{policy}/deployment");
    for (rule, field) in [
        (json!({"window": 0}), "demotion.window"),
        (json!({"window": 10_001}), "demotion.window"),
        (
            json!({"max_failure_percent": 101}),
            "demotion.max_failure_percent",
        ),
    ] {
        let (status, body) = api
            .call(
                "PUT",
                &deployment,
                Some(&marketer),
                Some(json!({"active": version, "demotion": rule})),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(field),
            "{body}"
        );
    }
    let (_, stored) = api.call("GET", &deployment, Some(&marketer), None).await;
    assert_eq!(stored["active"], json!(null), "{stored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadows_results_are_kept_beside_the_served_ones_and_its_agreement_reported() {
    let lab = CallLab::start().await;
    let marketer = lab.marketer_key.clone();
    let (_, _, shadow, deployment) =
        two_versions(&lab, json!({"active": "STEADY", "shadow": "HOSTILE"})).await;
    let (buyer, _) = lab.bidding_buyer("buyer_answers", 6).await;

    lab.carrier_to(EVERY_OTHER, "caller_hangs_up", 6, &["-d", "10", "-l", "1"])
        .await
        .assert_ok();
    buyer.finish().await.assert_ok();
    let mut records = lab.wait_for_records(6).await;
    records.sort_by_key(|r| r.received_at_ms);
    let mut differences = Vec::new();
    let mut same = 0;
    for (i, record) in records.iter().enumerate() {
        let run = |role: &str| {
            record
                .trace
                .policies
                .iter()
                .find(|p| p.role == role)
                .unwrap_or_else(|| panic!("a {role} run in {:?}", record.trace.policies))
        };
        let (active, shadowed) = (run("active"), run("shadow"));
        let active_score = active.result.as_ref().expect("the served result")["score"].clone();
        assert_eq!(record.quality, active_score.as_u64().map(|s| s as u8));
        if i % 2 == 0 {
            // The hostile version scores 42 on its first call, then every other.
            assert_eq!(shadowed.outcome, "ok");
            let result = shadowed.result.as_ref().expect("the shadow's result");
            assert_eq!(result, &json!({"score": 42, "tags": ["every-other"]}));
            let active_score = active_score.as_u64().expect("a score");
            differences.push(active_score.abs_diff(42));
            same += usize::from(active.result == shadowed.result);
        } else {
            assert_eq!(shadowed.outcome, "trap", "{shadowed:?}");
            assert_eq!(shadowed.result, None);
        }
    }

    let (status, view) = lab
        .api
        .call("GET", &deployment, Some(&marketer), None)
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        view["shadow"],
        json!(shadow),
        "a failing shadow below its share stays"
    );
    let agreement = &view["shadow_agreement"];
    assert_eq!(agreement["calls"], 6, "{agreement}");
    assert_eq!(agreement["shadow_failed"], 3, "{agreement}");
    let mean = differences.iter().sum::<u64>() as f64 / differences.len() as f64;
    assert_eq!(
        agreement["mean_score_difference"],
        json!(mean),
        "{agreement}"
    );
    assert_eq!(
        agreement["same_result_percent"],
        json!((same * 100) as f64 / 3.0),
        "{agreement}"
    );
    assert_eq!(agreement["same_first_choice_percent"], json!(null));
    lab.stop().await;
}

/// A caller from the area code the shadow's new rule is about.
const NEW_YORK_CALLER: &str = "+12125550123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_that_differs_on_one_area_code_agrees_on_the_other_calls() {
    let lab = CallLab::start().await;
    let (_, _, _, deployment) = two_versions_of(
        &lab,
        test_guest("area-code-scorer.wasm"),
        json!({"active": "STEADY", "shadow": "HOSTILE"}),
    )
    .await;
    let (buyer, _) = lab.bidding_buyer("buyer_answers", 6).await;
    for caller in [CALLER, NEW_YORK_CALLER] {
        lab.carrier_from(
            caller,
            EVERY_OTHER,
            "caller_hangs_up",
            3,
            &["-d", "10", "-l", "1"],
        )
        .await
        .assert_ok();
    }
    buyer.finish().await.assert_ok();
    let records = lab.wait_for_records(6).await;
    let mut differences = Vec::new();
    for record in &records {
        let score_of = |role: &str| {
            let run = record.trace.policies.iter().find(|p| p.role == role);
            let result = run.and_then(|p| p.result.clone()).expect("a result");
            (result["score"].as_u64().expect("a score"), result)
        };
        let ((active, served), (shadow, shadowed)) = (score_of("active"), score_of("shadow"));
        if record.caller == NEW_YORK_CALLER {
            assert!(shadow < active, "{served} / {shadowed}");
            assert!(
                shadowed["tags"].to_string().contains("area-212"),
                "{shadowed}"
            );
        } else {
            assert_eq!(served, shadowed);
        }
        differences.push(active.abs_diff(shadow));
    }
    let (status, view) = lab
        .api
        .call("GET", &deployment, Some(&lab.marketer_key), None)
        .await;
    assert_eq!(status, 200, "{view}");
    let agreement = &view["shadow_agreement"];
    assert_eq!(agreement["calls"], 6, "{agreement}");
    assert_eq!(agreement["shadow_failed"], 0, "{agreement}");
    assert_eq!(agreement["same_result_percent"], json!(50.0), "{agreement}");
    let mean = differences.iter().sum::<u64>() as f64 / 6.0;
    assert_eq!(
        agreement["mean_score_difference"],
        json!(mean),
        "{agreement}"
    );
    assert!(mean > 0.0);
    lab.stop().await;
}

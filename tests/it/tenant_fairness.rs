//! One tenant's slow or hostile work delays only that tenant's calls: the
//! other tenants' calls, measured in the same run, keep their answer times.

use std::time::Duration;

use host::model::CallOutcome;
use host::policy::Limits;
use host::runtime::PolicyCpu;
use serde_json::json;
use tests::call_lab::{CallLab, Carrier, LabSetup, Sipp, never_answers};
use tests::{TestApi, str_field, test_guest};

const HOSTILE_NUMBER: &str = "+18005550711";
const SCORED_NUMBER: &str = "+18005550722";

/// The deadline of the labs' policies, which have fuel enough to spin
/// through it.
const DEADLINE: Duration = Duration::from_secs(1);

/// A lab whose policies may spin for the whole [`DEADLINE`], and a hostile
/// marketer with the hostile test scorer deployed: the lab, the tenant's id
/// and key, and the scorer's id. No tenant's CPU share runs out here, so
/// that what is tested is the workers' queue; the share has tests of its own.
async fn lab_with_hostile_tenant(
    dns: Option<std::sync::Arc<dyn host::names::Dns>>,
) -> (CallLab, String, String, String) {
    let lab = CallLab::build(LabSetup {
        limits: Limits {
            fuel: u64::MAX / 2,
            deadline: DEADLINE,
            ..TestApi::LIMITS
        },
        dns,
        tenant_cpu: PolicyCpu::new(Duration::from_secs(3600)),
        ..LabSetup::default()
    })
    .await;
    let (hostile_id, hostile_key) = lab.api.tenant("hostile", "marketer").await;
    let (scorer, _) = lab
        .deploy_new(
            &hostile_key,
            "scorer",
            test_guest("hostile-scorer.wasm"),
            "fallback",
        )
        .await;
    (lab, hostile_id, hostile_key, scorer)
}

/// The other tenant: the lab's campaign (no policy: routed on the loop) and
/// a campaign with a well-behaved scorer (routed on the workers), both
/// bidding to one buyer that answers four calls.
async fn other_tenant(lab: &CallLab) -> Sipp {
    let (scorer, _) = lab
        .deploy_new(
            &lab.marketer_key,
            "scorer",
            test_guest("hostile-scorer.wasm"),
            "fallback",
        )
        .await;
    let scored = lab
        .api
        .campaign(
            &lab.marketer_key,
            json!({"name": "scored", "numbers": [SCORED_NUMBER], "scorer_policy_id": scorer}),
        )
        .await;
    let (buyer, target) = lab.bidding_buyer("buyer_answers", 4).await;
    lab.bid_on(&str_field(&scored, "id"), &target, 5_000_000, 0, 0)
        .await;
    buyer
}

/// One call to each of the other tenant's campaigns, in turn.
async fn other_tenants_calls(lab: &CallLab) -> (Carrier, Carrier) {
    let static_bids = lab.carrier("caller_hangs_up", 1, &["-d", "50"]).await;
    let scored = lab
        .carrier_to(SCORED_NUMBER, "caller_hangs_up", 1, &["-d", "50"])
        .await;
    (static_bids, scored)
}

/// Waits until the policy workers hold at least `calls` calls.
async fn workers_hold(lab: &CallLab, calls: u64) {
    for _ in 0..1000 {
        let metrics = lab.api.metrics().await;
        let held = metrics
            .lines()
            .find_map(|l| l.strip_prefix("plugboard_policy_worker_calls "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if held >= calls {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let metrics = lab.api.metrics().await;
    panic!("the workers never held {calls} calls: {metrics}");
}

fn slowest(carriers: &[&Carrier]) -> Duration {
    carriers
        .iter()
        .flat_map(|c| c.setup_times())
        .max()
        .expect("calls were placed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scorer_at_its_deadline_holds_up_only_its_own_tenants_calls() {
    let (lab, hostile_id, _, spinner) = lab_with_hostile_tenant(None).await;
    lab.campaign_in_store("spin", HOSTILE_NUMBER, |c| {
        c.tenant_id = hostile_id.clone();
        c.scorer_policy_id = Some(spinner.clone());
    });
    let buyer = other_tenant(&lab).await;
    let calm = other_tenants_calls(&lab).await;
    calm.0.assert_ok();
    calm.1.assert_ok();

    // Four hostile calls at once, each holding a worker for the deadline.
    let hostile = async {
        lab.carrier_to(
            HOSTILE_NUMBER,
            "caller_refused",
            4,
            &["-r", "100", "-l", "4"],
        )
        .await
    };
    let victim = async {
        workers_hold(&lab, 4).await;
        other_tenants_calls(&lab).await
    };
    let (hostile, attacked) = tokio::join!(hostile, victim);
    hostile.assert_ok();
    attacked.0.assert_ok();
    attacked.1.assert_ok();
    buyer.finish().await.assert_ok();

    let hostile_fastest = hostile
        .setup_times()
        .into_iter()
        .min()
        .expect("hostile calls");
    assert!(hostile_fastest >= DEADLINE, "{hostile_fastest:?}");
    let calm_slowest = slowest(&[&calm.0, &calm.1]);
    let attacked_slowest = slowest(&[&attacked.0, &attacked.1]);
    // Before, each call waited for the hostile scorers ahead of it: at
    // least one deadline.
    assert!(
        attacked_slowest * 4 < hostile_fastest,
        "under attack {attacked_slowest:?}, calm {calm_slowest:?}, a hostile call {hostile_fastest:?}"
    );

    let records = lab.wait_for_records(8).await;
    let hostile_outcomes: Vec<(CallOutcome, &str)> = records
        .iter()
        .filter(|r| r.tenant_id == hostile_id)
        .map(|r| (r.outcome, r.trace.policies[0].outcome.as_str()))
        .collect();
    assert_eq!(
        hostile_outcomes,
        vec![(CallOutcome::NoAnswer, "timeout"); 4],
        "each hostile call ran to its deadline and was still answered"
    );
    lab.stop().await;
}

/// `bytes` with a custom section naming `n`: another version of the same
/// component, compiled anew.
fn variant(bytes: &[u8], n: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let name = format!("variant-{n}");
    // A custom section: id 0, size, then the name's length and the name.
    let size = u8::try_from(name.len() + 1).expect("short");
    out.extend([0, size, u8::try_from(name.len()).expect("short")]);
    out.extend(name.as_bytes());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_uploading_in_a_loop_waits_behind_itself_and_never_blocks_another() {
    let api = TestApi::new().await;
    let (flood_id, flood) = api.tenant("flood", "marketer").await;
    let (_, quiet) = api.tenant("quiet", "marketer").await;
    let component = test_guest("hostile-scorer.wasm");
    let upload = |key: &str, bytes: Vec<u8>| {
        let key = key.to_owned();
        let api = &api;
        async move {
            api.raw(
                "POST",
                "/v1/policies?world=scorer",
                Some(&key),
                Some(bytes),
                "application/wasm",
            )
            .await
        }
    };
    let floods = (0..6).map(|n| upload(&flood, variant(&component, n)));
    let (flooded, (quiet_status, quiet_body)) = tokio::join!(
        futures_join_all(floods),
        upload(&quiet, variant(&component, 100)),
    );
    assert_eq!(quiet_status, 201, "{quiet_body}");
    let accepted = flooded.iter().filter(|(status, _)| *status == 201).count();
    // One compiling and two waiting; the rest refused at once.
    assert_eq!(accepted, 3, "{flooded:?}");
    for (status, body) in flooded.iter().filter(|(status, _)| *status != 201) {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body["error"]["code"], "policy.compile_busy", "{body}");
    }
    let stored = api
        .state
        .store
        .policies()
        .expect("policies")
        .into_iter()
        .filter(|p| p.tenant_id == flood_id)
        .count();
    assert_eq!(stored, accepted, "a refused upload stores nothing");
}

/// Runs the futures together, their outputs in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in set.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("ready")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_doing_every_hostile_thing_at_once_costs_the_others_nothing() {
    let (lab, hostile_id, hostile_key, scorer_of_hostile) =
        lab_with_hostile_tenant(Some(never_answers())).await;
    // Each campaign's id is how its scorer misbehaves; every one falls
    // back to a target whose name never resolves.
    let modes = [
        ("spin", "+18005550811", 6),
        ("alias-tags", "+18005550812", 2),
        ("log-heavy", "+18005550813", 2),
        ("error-nul", "+18005550814", 2),
        ("count", "+18005550815", 2),
    ];
    for (mode, number, _) in modes {
        lab.campaign_in_store(mode, number, |c| {
            c.tenant_id = hostile_id.clone();
            c.scorer_policy_id = Some(scorer_of_hostile.clone());
            c.fallback_target = Some("sip:sink@never.resolves.test".to_owned());
        });
    }
    let buyer = other_tenant(&lab).await;
    let calm = other_tenants_calls(&lab).await;

    let policies = async {
        let calls = modes.map(|(_, number, calls)| {
            let calls_arg = calls.to_string();
            let lab = &lab;
            async move {
                lab.carrier_to(
                    number,
                    "caller_refused",
                    calls,
                    &["-r", "100", "-l", &calls_arg],
                )
                .await
            }
        });
        let [a, b, c, d, e] = calls;
        let (a, b, c, d, e) = tokio::join!(a, b, c, d, e);
        [a, b, c, d, e]
    };
    let slow_upload = async {
        let bytes =
            tests::hostile::component_around(&tests::hostile::slow_to_compile(1_000, 1_000));
        lab.api
            .raw(
                "POST",
                "/v1/policies?world=scorer",
                Some(&hostile_key),
                Some(bytes),
                "application/wasm",
            )
            .await
    };
    let api_flood = async {
        let mut limited = 0;
        for _ in 0..2_500 {
            let (status, _) = lab
                .api
                .call("GET", "/v1/campaigns", Some(&hostile_key), None)
                .await;
            limited += usize::from(status == 429);
            // The router answers without waiting: let the others run.
            tokio::task::yield_now().await;
        }
        limited
    };
    let idle_connections = async {
        let mut held = Vec::new();
        for _ in 0..300 {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket.bind(([127, 0, 0, 2], 0).into()).expect("bind");
            if let Ok(stream) = socket.connect(lab.sip).await {
                held.push(stream);
            }
        }
        held
    };
    let victim = async {
        // The hostile calls arrive within 40 ms and spin for seconds; the
        // overlap is checked below from SIPp's own timestamps.
        tokio::time::sleep(Duration::from_millis(300)).await;
        other_tenants_calls(&lab).await
    };
    let (policies, upload, limited, held, attacked) =
        tokio::join!(policies, slow_upload, api_flood, idle_connections, victim);
    for carrier in &policies {
        carrier.assert_ok();
    }
    calm.0.assert_ok();
    calm.1.assert_ok();
    attacked.0.assert_ok();
    attacked.1.assert_ok();
    buyer.finish().await.assert_ok();

    let spin_fastest = policies[0].setup_times().into_iter().min().expect("calls");
    assert!(spin_fastest >= DEADLINE, "{spin_fastest:?}");
    let last_seen = |carrier: &Carrier| carrier.messages.iter().filter_map(|m| m.at).max();
    let first_sent = |carrier: &Carrier| carrier.messages.iter().filter_map(|m| m.at).min();
    assert!(
        first_sent(&attacked.0) < last_seen(&policies[0]),
        "the other tenant's calls ran while the hostile scorer spun"
    );
    let calm_slowest = slowest(&[&calm.0, &calm.1]);
    let attacked_slowest = slowest(&[&attacked.0, &attacked.1]);
    assert!(
        attacked_slowest * 4 < spin_fastest,
        "under attack {attacked_slowest:?}, calm {calm_slowest:?}, a hostile call {spin_fastest:?}"
    );

    assert_eq!(upload.0, 422, "{}", upload.1);
    assert_eq!(upload.1["error"]["code"], "policy.compile_budget");
    assert!(limited > 0, "the API flood met its key's rate");
    let (status, _) = lab
        .api
        .call("GET", "/v1/campaigns", Some(&lab.marketer_key), None)
        .await;
    assert_eq!(status, 200, "another key is served");
    assert!(held.len() >= 256, "{} connections", held.len());

    let victim_calls = 4;
    let hostile_calls: usize = modes.iter().map(|(_, _, n)| *n as usize).sum();
    let records = lab.wait_for_records(victim_calls + hostile_calls).await;
    for (mode, _, calls) in modes {
        let outcomes: Vec<(CallOutcome, &str, &str)> = records
            .iter()
            .filter(|r| r.campaign_id == mode)
            .map(|r| {
                let policy = r.trace.policies[0].outcome.as_str();
                let leg = r.trace.legs.last().map_or("none", |l| l.result.as_str());
                (r.outcome, policy, leg)
            })
            .collect();
        let policy = match mode {
            "spin" => "timeout",
            "alias-tags" => "bad_output",
            "error-nul" => "guest_error",
            _ => "ok",
        };
        // A loaded test machine may stretch a short policy past its 1 s
        // deadline; every call is still refused the same way, not lost.
        assert_eq!(outcomes.len(), calls as usize, "{mode}: {outcomes:?}");
        for outcome in &outcomes {
            assert!(
                matches!(outcome, (CallOutcome::NoAnswer, p, "unresolvable") if *p == policy || *p == "timeout"),
                "{mode}: {outcomes:?}"
            );
        }
    }
    let answered = records
        .iter()
        .filter(|r| r.tenant_id != hostile_id && r.outcome == CallOutcome::Answered)
        .count();
    assert_eq!(answered, victim_calls);
    drop(held);
    lab.stop().await;
}

/// A lab whose policies may spin for 50 ms, each tenant's share of CPU
/// 20 ms a second.
async fn lab_with_small_cpu_shares() -> CallLab {
    CallLab::build(LabSetup {
        limits: Limits {
            fuel: u64::MAX / 2,
            deadline: Duration::from_millis(50),
            ..TestApi::LIMITS
        },
        tenant_cpu: PolicyCpu::new(Duration::from_millis(20)),
        // Spinning guests and the rest of the suite load the two cores: a
        // SIPp buyer that answers late is still a buyer here (a fresh-clone
        // run once waited over 2 s for one and rang no one else: 480).
        first_response_timeout: Duration::from_secs(30),
        ..LabSetup::default()
    })
    .await
}

/// The outcomes of `policy_id`'s runs in `records`, and the tenants charged.
fn policy_outcomes<'r>(
    records: &'r [host::model::CallRecord],
    policy_id: &str,
) -> Vec<(&'r str, &'r str)> {
    records
        .iter()
        .flat_map(|r| &r.trace.policies)
        .filter(|p| p.policy_id == policy_id)
        .map(|p| (p.outcome.as_str(), p.tenant_id.as_str()))
        .collect()
}

fn count(outcomes: &[(&str, &str)], outcome: &str) -> usize {
    outcomes.iter().filter(|(o, _)| *o == outcome).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_past_its_cpu_share_runs_no_policy_while_another_tenant_calls() {
    let lab = lab_with_small_cpu_shares().await;
    let (hostile_id, hostile_key) = lab.api.tenant("hostile", "marketer").await;
    let (spinner, _) = lab
        .deploy_new(
            &hostile_key,
            "scorer",
            test_guest("hostile-scorer.wasm"),
            "fallback",
        )
        .await;
    lab.campaign_in_store("spin", HOSTILE_NUMBER, |c| {
        c.tenant_id = hostile_id.clone();
        c.scorer_policy_id = Some(spinner.clone());
    });
    // Alone on the node the tenant may take all of it: four spins of 50 ms
    // one after the other, ten times its share of a second.
    lab.carrier_to(HOSTILE_NUMBER, "caller_refused", 4, &["-l", "1"])
        .await
        .assert_ok();
    let alone = lab.wait_for_records(4).await;
    assert_eq!(
        policy_outcomes(&alone, &spinner),
        vec![("timeout", hostile_id.as_str()); 4]
    );

    // With another tenant calling, the spinner runs only on what it earns.
    let (buyer, _) = lab.bidding_buyer("buyer_answers", 20).await;
    let (hostile, other) = tokio::join!(
        lab.carrier_to(
            HOSTILE_NUMBER,
            "caller_refused",
            20,
            &["-r", "10", "-l", "2"]
        ),
        lab.carrier("caller_hangs_up", 20, &["-r", "10", "-d", "50"]),
    );
    hostile.assert_ok();
    other.assert_ok();
    buyer.finish().await.assert_ok();
    let records = lab.wait_for_records(44).await;
    let spins = policy_outcomes(&records, &spinner);
    assert_eq!(spins.len(), 24);
    // 2 s of calls earn 40 ms of CPU: a spin or two (spins take less CPU
    // than their 50 ms on a loaded machine), and one into debt.
    assert!(
        count(&spins, "cpu_share") >= 10,
        "{} of 20 refused: {spins:?}",
        count(&spins, "cpu_share")
    );
    assert_eq!(
        count(&spins, "cpu_share") + count(&spins, "timeout"),
        24,
        "{spins:?}"
    );
    let hostile_calls = records.iter().filter(|r| r.tenant_id == hostile_id);
    assert!(
        hostile_calls
            .clone()
            .all(|r| r.outcome == CallOutcome::NoAnswer),
        "a call whose policy was not run is still handled"
    );
    assert_eq!(hostile_calls.count(), 24);
    let answered = records
        .iter()
        .filter(|r| r.tenant_id != hostile_id && r.outcome == CallOutcome::Answered)
        .count();
    assert_eq!(answered, 20);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidders_module_is_charged_to_the_bidder_and_not_to_the_marketer_it_bids_for() {
    let lab = lab_with_small_cpu_shares().await;
    let (spinning_bidder, bidder_key) = lab.api.tenant("spinning", "bidder").await;
    // The test bidder spins on campaign `spin-bids`.
    let (module, _) = lab
        .deploy_new(
            &bidder_key,
            "bidder",
            test_guest("echo-bidder.wasm"),
            "skip",
        )
        .await;
    lab.new_bidder_as(&bidder_key, "spins", json!({"strategy_policy_id": module}))
        .await;
    let (scorer, _) = lab
        .deploy_new(
            &lab.marketer_key,
            "scorer",
            test_guest("hostile-scorer.wasm"),
            "fallback",
        )
        .await;
    lab.campaign_in_store("spin-bids", SCORED_NUMBER, |c| {
        c.scorer_policy_id = Some(scorer.clone());
    });
    let buyer = lab.buyer("buyer_answers", 20).await;
    let target = lab.target(buyer.port, 20, 10).await;
    lab.bid_on("spin-bids", &target, 5_000_000, 0, 0).await;

    lab.carrier_to(
        SCORED_NUMBER,
        "caller_hangs_up",
        20,
        &["-r", "10", "-d", "50"],
    )
    .await
    .assert_ok();
    buyer.finish().await.assert_ok();
    let records = lab.wait_for_records(20).await;
    assert!(records.iter().all(|r| r.outcome == CallOutcome::Answered));
    let bids = policy_outcomes(&records, &module);
    assert!(
        bids.iter().all(|(_, tenant)| *tenant == spinning_bidder),
        "{bids:?}"
    );
    assert!(count(&bids, "cpu_share") >= 10, "{bids:?}");
    assert_eq!(
        count(&bids, "cpu_share") + count(&bids, "timeout"),
        20,
        "{bids:?}"
    );
    // The marketer's own scorer never paid for the bidder's spins.
    assert_eq!(
        policy_outcomes(&records, &scorer),
        vec![("ok", lab_marketer(&records)); 20]
    );
    lab.stop().await;
}

/// The tenant of the lab's campaigns, as the records name it.
fn lab_marketer(records: &[host::model::CallRecord]) -> &str {
    records[0].tenant_id.as_str()
}

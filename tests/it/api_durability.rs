//! Durability: data and active deployments survive a restart, compiled
//! artifacts are reused; a `plugboard serve` killed with SIGKILL in the middle
//! of a stream of writes reopens with every acknowledged write.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use serde_json::json;
use tests::{TestApi, example_policy, plugboard_bin, sample_call, str_field};

#[tokio::test]
async fn data_and_deployments_survive_a_restart_without_recompiling() {
    let dir = tempfile::tempdir().expect("temp dir");
    let api = TestApi::at(dir.path()).await;
    let (_, mk) = api.tenant("acme", "marketer").await;
    let c = api
        .campaign(&mk, json!({"name": "solar", "numbers": ["+18005550100"]}))
        .await;
    let p = api
        .upload(&mk, "scorer", example_policy("geo-history-scorer"))
        .await;
    let policy = str_field(&p, "id");
    let (status, _) = api
        .call(
            "PUT",
            &format!("/v1/policies/{policy}/deployment"),
            Some(&mk),
            Some(json!({"active": str_field(&p, "version")})),
        )
        .await;
    assert_eq!(status, 200);
    let cid = str_field(&c, "id");
    let (status, _) = api
        .call(
            "PUT",
            &format!("/v1/campaigns/{cid}/pool"),
            Some(&mk),
            Some(json!({"numbers": ["+18005550201", "+18005550202"]})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, visitor) = api
        .call(
            "POST",
            &format!("/v1/campaigns/{cid}/dni-sessions"),
            Some(&mk),
            Some(json!({"attributes": {"source": "tv"}})),
        )
        .await;
    let operator = api.operator_key.clone();
    // As `plugboard serve` does on SIGTERM.
    api.state.store.flush().expect("flush");
    drop(api);

    let restarted = TestApi::open(dir.path(), operator).await;
    let (status, campaign) = restarted
        .call(
            "GET",
            &format!("/v1/campaigns/{}", str_field(&c, "id")),
            Some(&mk),
            None,
        )
        .await;
    assert_eq!((status, campaign["name"].clone()), (200, json!("solar")));
    let deployment = restarted
        .state
        .policies
        .registry()
        .get(&policy)
        .expect("deployment restored");
    assert!(
        deployment.active().loaded_from_cache(),
        "the compiled artifact was reused"
    );
    let run = deployment.score(&tests::context(), &sample_call("solar"));
    assert!(run.invocation.outcome.is_ok());

    // The visitor keeps its number across the restart; the other is still free.
    let dni = format!("/v1/campaigns/{cid}/dni-sessions");
    let session = str_field(&visitor, "session_id");
    let (_, renewed) = restarted
        .call(
            "POST",
            &dni,
            Some(&mk),
            Some(json!({"session_id": session})),
        )
        .await;
    assert_eq!(renewed["number"], visitor["number"]);
    let (_, other) = restarted
        .call("POST", &dni, Some(&mk), Some(json!({})))
        .await;
    assert_ne!(other["number"], visitor["number"]);
    assert_eq!(other["pooled"], json!(true));
}

/// A plain HTTP/1.1 request on a fresh connection; status and body.
fn http(port: u16, method: &str, path: &str, key: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Some((status, body))
}

/// Starts `plugboard serve` on a free port; returns the child and the port
/// it printed once listening.
fn serve(dir: &std::path::Path) -> (std::process::Child, u16) {
    let mut child = Command::new(plugboard_bin())
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--sip-listen",
            "127.0.0.1:0",
            "--example-policies",
            "/nonexistent",
        ])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("plugboard serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("serve logs until it listens")
            .expect("utf-8 log");
        if let Some(addr) = line.split("listening on http://").nth(1) {
            break addr
                .trim()
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("port");
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, port)
}

#[test]
fn sigkill_during_writes_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = host::runtime::bootstrap(dir.path()).expect("bootstrap");
    let (mut child, port) = serve(dir.path());
    let (status, body) = http(
        port,
        "POST",
        "/v1/tenants",
        &key,
        r#"{"name":"acme","role":"marketer"}"#,
    )
    .expect("tenant");
    assert_eq!(status, 201, "{body}");
    let marketer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let mk = str_field(&marketer, "api_key");

    // Writers stream campaigns; the test kills the server mid-stream.
    let writer = {
        let mk = mk.clone();
        std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            for i in 0..2000 {
                let body = format!(r#"{{"name":"c{i}","numbers":["+1800555{i:04}"]}}"#);
                match http(port, "POST", "/v1/campaigns", &mk, &body) {
                    Some((201, reply)) => acknowledged.push(reply),
                    _ => break,
                }
            }
            acknowledged
        })
    };
    // Kill once some writes have been acknowledged: poll the count through the API.
    loop {
        match http(port, "GET", "/v1/campaigns", &mk, "") {
            Some((200, list)) if list.matches("\"id\"").count() >= 20 => break,
            Some(_) => std::thread::yield_now(),
            None => panic!("the server stopped before it was killed"),
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let acknowledged = writer.join().expect("writer");
    // The last replies may have been cut by the kill; most came through.
    assert!(
        acknowledged.len() >= 10,
        "{} writes acknowledged",
        acknowledged.len()
    );

    let (mut child, port) = serve(dir.path());
    let (status, list) = http(port, "GET", "/v1/campaigns", &mk, "").expect("list after restart");
    assert_eq!(status, 200);
    let stored: Vec<serde_json::Value> = serde_json::from_str(&list).expect("JSON");
    for reply in &acknowledged {
        let campaign: serde_json::Value = serde_json::from_str(reply).expect("JSON");
        assert!(
            stored.iter().any(|s| s["id"] == campaign["id"]),
            "acknowledged campaign {} lost ({} acknowledged, {} stored)",
            campaign["id"],
            acknowledged.len(),
            stored.len()
        );
    }
    child.kill().expect("stop");
    child.wait().expect("reaped");
}

#[tokio::test]
async fn caps_count_the_calls_answered_before_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let api = TestApi::at(dir.path()).await;
    let (_, mk) = api.tenant("acme", "marketer").await;
    let (_, buyer) = api.tenant("buyer", "bidder").await;
    let c = api
        .campaign(&mk, json!({"name": "solar", "numbers": ["+18005550100"]}))
        .await;
    let (_, bidder) = api
        .call(
            "POST",
            "/v1/bidders",
            Some(&buyer),
            Some(json!({"name": "b"})),
        )
        .await;
    let (_, target) = api
        .call(
            "POST",
            &format!("/v1/bidders/{}/targets", str_field(&bidder, "id")),
            Some(&buyer),
            Some(json!({"uri": "sip:a@127.0.0.1"})),
        )
        .await;
    let (status, bid) = api
        .call(
            "POST",
            "/v1/bids",
            Some(&buyer),
            Some(
                json!({"campaign_id": str_field(&c, "id"), "target_id": str_field(&target, "id"),
                "amount_micros": 10_000_000, "daily_cap": 2, "time_zone": "America/Denver"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{bid}");
    let store = &api.state.store;
    let (bid, target) = (
        store
            .bid(&str_field(&bid, "id"))
            .expect("read")
            .expect("bid"),
        store
            .target(&str_field(&target, "id"))
            .expect("read")
            .expect("target"),
    );
    let campaign = store
        .campaign(&str_field(&c, "id"))
        .expect("read")
        .expect("campaign");
    let winner = host::model::Winner {
        bid_id: bid.id.clone(),
        bidder_id: bid.bidder_id.clone(),
        tenant_id: bid.tenant_id.clone(),
        target_id: target.id.clone(),
        amount_micros: bid.amount_micros,
    };
    let now = host::clock::unix_now();
    for id in ["one", "two"] {
        let record = tests::call_record(
            id,
            &campaign,
            "+14155550123",
            now * 1000,
            60,
            Some(winner.clone()),
            120,
        );
        store.record_call(&record).expect("stored");
    }
    let operator = api.operator_key.clone();
    api.state.store.flush().expect("flush");
    drop(api);

    let restarted = TestApi::open(dir.path(), operator).await;
    assert_eq!(
        restarted
            .state
            .ledger
            .check(&bid, &target, now)
            .map_err(|r| r.code()),
        Err("daily_cap_reached"),
        "the two calls of today count after the restart"
    );
}

//! The HTTP API through its router (no socket): every route's happy path and
//! its errors, with snapshots of the JSON.

use expect_test::expect;
use serde_json::json;
use tests::{TestApi, example_policy, redact, str_field};

/// The quickstart (docs/quickstart.md), step by step, then every other route once.
#[tokio::test]
async fn quickstart_and_every_route() {
    let api = TestApi::new().await;
    let op = api.operator_key.clone();

    let (_, acme) = api
        .call(
            "POST",
            "/v1/tenants",
            Some(&op),
            Some(json!({"name": "acme", "role": "marketer"})),
        )
        .await;
    expect![[r#"
        {
          "api_key": "<api-key>",
          "id": "<tnt>",
          "name": "acme",
          "role": "marketer"
        }"#]]
    .assert_eq(&redact(&acme));
    let mk = str_field(&acme, "api_key");
    let (_, buyer) = api.tenant("buyer1", "bidder").await;

    let (status, campaign) = api
        .call(
            "POST",
            "/v1/campaigns",
            Some(&mk),
            Some(json!({"name": "solar", "numbers": ["+18005550100"]})),
        )
        .await;
    assert_eq!(status, 201);
    expect![[r#"
        {
          "auction_timeout_ms": 100,
          "bidder_access": {
            "kind": "all"
          },
          "created_at": "<time>",
          "early_ringback": false,
          "fallback_target": null,
          "floor_price_micros": 0,
          "id": "<cmp>",
          "name": "solar",
          "numbers": [
            "+18005550100"
          ],
          "scorer_policy_id": null,
          "selector_policy_id": null,
          "shared_attribution_keys": [],
          "tenant_id": "<tnt>"
        }"#]]
    .assert_eq(&redact(&campaign));
    let cid = str_field(&campaign, "id");

    let (status, bidder) = api
        .call(
            "POST",
            "/v1/bidders",
            Some(&buyer),
            Some(json!({"name": "Buyer One"})),
        )
        .await;
    assert_eq!(status, 201);
    let bidder_id = str_field(&bidder, "id");
    let (status, target) = api
        .call(
            "POST",
            &format!("/v1/bidders/{bidder_id}/targets"),
            Some(&buyer),
            Some(json!({"uri": "sip:sales@127.0.0.1:5070", "ring_timeout_s": 20, "max_concurrent": 10})),
        )
        .await;
    assert_eq!(status, 201);
    let target_id = str_field(&target, "id");
    let (status, bid) = api
        .call(
            "POST",
            "/v1/bids",
            Some(&buyer),
            Some(
                json!({"campaign_id": cid, "target_id": target_id, "amount_micros": 25_000_000,
                        "min_quality": 0, "min_duration_s": 90}),
            ),
        )
        .await;
    assert_eq!(status, 201);
    expect![[r#"
        {
          "amount_micros": 25000000,
          "bidder_id": "<bdr>",
          "campaign_id": "<cmp>",
          "created_at": "<time>",
          "daily_cap": null,
          "daily_payout_cap_micros": null,
          "duplicate_window_days": null,
          "hourly_cap": null,
          "hourly_payout_cap_micros": null,
          "id": "<bid>",
          "min_duration_s": 90,
          "min_quality": 0,
          "monthly_cap": null,
          "monthly_payout_cap_micros": null,
          "schedule": [],
          "target_id": "<tgt>",
          "tenant_id": "<tnt>",
          "time_zone": "UTC"
        }"#]]
    .assert_eq(&redact(&bid));
    let bid_id = str_field(&bid, "id");

    let scorer = example_policy("geo-history-scorer");
    let (status, uploaded) = api
        .raw(
            "POST",
            "/v1/policies?world=scorer",
            Some(&mk),
            Some(scorer.clone()),
            "application/wasm",
        )
        .await;
    assert_eq!(status, 201, "{uploaded}");
    let policy_id = str_field(&uploaded, "id");
    let version = str_field(&uploaded, "version");
    assert_eq!(str_field(&uploaded, "sha256")[..16], version);
    let (status, deployment) = api
        .call(
            "PUT",
            &format!("/v1/policies/{policy_id}/deployment"),
            Some(&mk),
            Some(json!({"active": version, "canary": null, "shadow": null})),
        )
        .await;
    assert_eq!(status, 200, "{deployment}");
    let (status, updated) = api
        .call(
            "PATCH",
            &format!("/v1/campaigns/{cid}"),
            Some(&mk),
            Some(json!({"scorer_policy_id": policy_id})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["scorer_policy_id"], json!(policy_id));
    assert!(
        api.state.policies.registry().get(&policy_id).is_some(),
        "deployed in the registry"
    );

    // Reads of what was created.
    for (path, key) in [
        ("/v1/tenants".to_owned(), &op),
        (format!("/v1/tenants/{}", str_field(&acme, "id")), &mk),
        ("/v1/api-keys".to_owned(), &mk),
        ("/v1/campaigns".to_owned(), &mk),
        (format!("/v1/campaigns/{cid}"), &mk),
        (format!("/v1/campaigns/{cid}/numbers"), &mk),
        ("/v1/bidders".to_owned(), &buyer),
        (format!("/v1/bidders/{bidder_id}"), &buyer),
        (format!("/v1/bidders/{bidder_id}/targets"), &buyer),
        ("/v1/bids".to_owned(), &buyer),
        (format!("/v1/bids/{bid_id}"), &buyer),
        ("/v1/policies".to_owned(), &mk),
        (format!("/v1/policies/{policy_id}"), &mk),
        (format!("/v1/policies/{policy_id}/versions"), &mk),
        (format!("/v1/policies/{policy_id}/deployment"), &mk),
    ] {
        let (status, body) = api.call("GET", &path, Some(key), None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
    }

    // A second version, a canary, a rollback.
    let constant = tests::test_guest("hostile-scorer.wasm");
    let (status, second) = api
        .raw(
            "POST",
            &format!("/v1/policies/{policy_id}/versions"),
            Some(&mk),
            Some(constant),
            "application/wasm",
        )
        .await;
    assert_eq!(status, 201, "{second}");
    let v2 = str_field(&second, "version");
    let (status, canaried) = api
        .call(
            "PUT",
            &format!("/v1/policies/{policy_id}/deployment"),
            Some(&mk),
            Some(json!({"active": version, "canary": {"version": v2, "percent": 10}, "shadow": null})),
        )
        .await;
    assert_eq!(status, 200, "{canaried}");
    let (status, dropped) = api
        .call(
            "POST",
            &format!("/v1/policies/{policy_id}/rollback"),
            Some(&mk),
            None,
        )
        .await;
    assert_eq!(status, 200, "{dropped}");
    assert_eq!(
        (dropped["active"].clone(), dropped["canary"].clone()),
        (json!(version), json!(null)),
        "rolling back a canary drops it"
    );
    let (status, _) = api
        .call(
            "PUT",
            &format!("/v1/policies/{policy_id}/deployment"),
            Some(&mk),
            Some(json!({"active": v2})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, rolled) = api
        .call(
            "POST",
            &format!("/v1/policies/{policy_id}/rollback"),
            Some(&mk),
            None,
        )
        .await;
    assert_eq!(status, 200, "{rolled}");
    assert_eq!(rolled["active"], json!(version));
    let (status, again) = api
        .call(
            "POST",
            &format!("/v1/policies/{policy_id}/rollback"),
            Some(&mk),
            None,
        )
        .await;
    assert_eq!(
        (status, again["error"]["code"].clone()),
        (409, json!("deployment.no_history"))
    );

    // Dry-run on the active version.
    let sample: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../example-policies/geo-history-scorer/sample.json"
        ))
        .expect("sample"),
    )
    .expect("sample JSON");
    let (status, report) = api
        .call(
            "POST",
            &format!("/v1/policies/{policy_id}/dry-run"),
            Some(&mk),
            Some(json!({"input": sample})),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["result"]["score"], json!(85));
    assert!(report["fuel_used"].as_u64().is_some_and(|f| f > 0));
    assert_eq!(report["logs"][0]["message"], json!("scored"));

    // Numbers: add, refuse a taken one, remove.
    let (status, numbers) = api
        .call(
            "POST",
            &format!("/v1/campaigns/{cid}/numbers"),
            Some(&mk),
            Some(json!({"number": "(800) 555-0101"})),
        )
        .await;
    assert_eq!(
        (status, numbers),
        (201, json!(["+18005550100", "+18005550101"]))
    );
    let other = api.campaign(&mk, json!({"name": "roofing"})).await;
    let (status, taken) = api
        .call(
            "POST",
            &format!("/v1/campaigns/{}/numbers", str_field(&other, "id")),
            Some(&mk),
            Some(json!({"number": "18005550101"})),
        )
        .await;
    assert_eq!(status, 409);
    expect![[r#"
        {
          "error": {
            "code": "number.taken",
            "message": "number +18005550101 is already in use"
          }
        }"#]]
    .assert_eq(&redact(&taken).replace(&cid, "<cmp>"));
    let (status, _) = api
        .call(
            "DELETE",
            &format!("/v1/campaigns/{cid}/numbers/+18005550101"),
            Some(&mk),
            None,
        )
        .await;
    assert_eq!(status, 204);

    // Updates and deletes.
    let (status, _) = api
        .call(
            "PUT",
            &format!("/v1/bidders/{bidder_id}/targets/{target_id}"),
            Some(&buyer),
            Some(json!({"uri": "sip:sales@127.0.0.1:5071"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, busy) = api
        .call(
            "DELETE",
            &format!("/v1/bidders/{bidder_id}/targets/{target_id}"),
            Some(&buyer),
            None,
        )
        .await;
    assert_eq!(
        (status, busy["error"]["code"].clone()),
        (409, json!("target.in_use"))
    );
    let (status, _) = api
        .call(
            "PUT",
            &format!("/v1/bids/{bid_id}"),
            Some(&buyer),
            Some(json!({"campaign_id": cid, "target_id": target_id, "amount_micros": 30_000_000})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call(
            "PUT",
            &format!("/v1/bidders/{bidder_id}"),
            Some(&buyer),
            Some(json!({"name": "B1"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call("DELETE", &format!("/v1/bids/{bid_id}"), Some(&buyer), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = api
        .call(
            "DELETE",
            &format!("/v1/bidders/{bidder_id}/targets/{target_id}"),
            Some(&buyer),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = api
        .call("DELETE", &format!("/v1/campaigns/{cid}"), Some(&mk), None)
        .await;
    assert_eq!(status, 204);
    let (status, gone) = api
        .call("GET", &format!("/v1/campaigns/{cid}"), Some(&mk), None)
        .await;
    assert_eq!(
        (status, gone["error"]["code"].clone()),
        (404, json!("campaign.not_found"))
    );

    // Keys: a second key, listed without secrets, revoked; a key cannot revoke itself.
    let (status, key2) = api.call("POST", "/v1/api-keys", Some(&mk), None).await;
    assert_eq!(status, 201);
    let (_, keys) = api.call("GET", "/v1/api-keys", Some(&mk), None).await;
    assert_eq!(keys.as_array().map(Vec::len), Some(2));
    assert!(
        !keys.to_string().contains("pbk_") || keys.to_string().contains("\"prefix\""),
        "{keys}"
    );
    assert!(keys[0].get("hash").is_none(), "{keys}");
    let (status, _) = api
        .call(
            "DELETE",
            &format!("/v1/api-keys/{}", str_field(&key2, "id")),
            Some(&mk),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = api
        .call(
            "GET",
            "/v1/campaigns",
            Some(&str_field(&key2, "api_key")),
            None,
        )
        .await;
    assert_eq!(status, 401, "a revoked key no longer works");
}

#[tokio::test]
async fn health_metrics_and_openapi_are_served() {
    let api = TestApi::new().await;
    let (status, body) = api.call("GET", "/healthz", None, None).await;
    assert_eq!((status, body), (200, json!("ok")));
    let (_, mk) = api.tenant("acme", "marketer").await;
    let (status, first) = api
        .raw(
            "POST",
            "/v1/policies?world=scorer",
            Some(&mk),
            Some(example_policy("geo-history-scorer")),
            "application/wasm",
        )
        .await;
    assert_eq!(status, 201);
    let id = str_field(&first, "id");
    let (_, second) = api
        .raw(
            "POST",
            &format!("/v1/policies/{id}/versions"),
            Some(&mk),
            Some(tests::test_guest("hostile-scorer.wasm")),
            "application/wasm",
        )
        .await;
    let (v1, v2) = (str_field(&first, "version"), str_field(&second, "version"));
    let (status, _) = api
        .call(
            "PUT",
            &format!("/v1/policies/{id}/deployment"),
            Some(&mk),
            Some(json!({"active": v1, "canary": {"version": v2, "percent": 5}})),
        )
        .await;
    assert_eq!(status, 200);
    let call = json!({"call": {"id": "c", "campaign_id": "spin", "caller": "+14155550123", "called": "+18005550100",
        "time": {"unix_seconds": 0, "local_weekday": 0, "local_hour": 9}}});
    let (status, report) = api
        .call(
            "POST",
            &format!("/v1/policies/{id}/dry-run"),
            Some(&mk),
            Some(json!({"version": v2, "input": call})),
        )
        .await;
    assert_eq!(
        (status, report["failure"]["kind"].clone()),
        (200, json!("out_of_fuel"))
    );
    let (status, _) = api.call("GET", "/metrics", None, None).await;
    assert_eq!(status, 401, "the metrics name every tenant's objects");
    let (status, _) = api.call("GET", "/metrics", Some(&mk), None).await;
    assert_eq!(status, 403);
    let text = api.metrics().await;
    for line in [
        "plugboard_policy_uploads_total{world=\"scorer\",result=\"ok\"} 2".to_owned(),
        format!(
            "plugboard_policy_deployment_active{{policy=\"{id}\",policy_name=\"scorer\",version=\"{v1}\"}} 1"
        ),
        format!(
            "plugboard_policy_deployment_canary_percent{{policy=\"{id}\",policy_name=\"scorer\",version=\"{v2}\"}} 5"
        ),
        format!(
            "plugboard_policy_invocations_total{{policy=\"{id}\",policy_name=\"scorer\",version=\"{v2}\",source=\"dry_run\",outcome=\"out_of_fuel\"}} 1"
        ),
    ] {
        assert!(text.contains(&line), "{line} missing from\n{text}");
    }
    let (status, openapi) = api.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    for schema in [
        "TargetView",
        "TargetStatus",
        "Bid",
        "BidTrace",
        "TargetEventTrace",
    ] {
        assert!(
            openapi["components"]["schemas"][schema].is_object(),
            "{schema} in the OpenAPI document"
        );
    }
    let paths: Vec<&String> = openapi["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .collect();
    expect![[r#"
        [
            "/healthz",
            "/metrics",
            "/v1/api-keys",
            "/v1/api-keys/{id}",
            "/v1/bidders",
            "/v1/bidders/{id}",
            "/v1/bidders/{id}/targets",
            "/v1/bidders/{id}/targets/{target_id}",
            "/v1/bids",
            "/v1/bids/{id}",
            "/v1/calls",
            "/v1/calls/{id}",
            "/v1/campaigns",
            "/v1/campaigns/{id}",
            "/v1/campaigns/{id}/dni-sessions",
            "/v1/campaigns/{id}/numbers",
            "/v1/campaigns/{id}/numbers/{number}",
            "/v1/campaigns/{id}/pool",
            "/v1/marketplace",
            "/v1/policies",
            "/v1/policies/{id}",
            "/v1/policies/{id}/deployment",
            "/v1/policies/{id}/dry-run",
            "/v1/policies/{id}/rollback",
            "/v1/policies/{id}/versions",
            "/v1/policies/{id}/versions/{version}/replay",
            "/v1/policies/{id}/versions/{version}/test-vectors",
            "/v1/replays/{id}",
            "/v1/tenants",
            "/v1/tenants/{id}",
        ]
    "#]]
    .assert_debug_eq(&paths);
}

#[tokio::test]
async fn dni_assigns_renews_exhausts_and_attributes() {
    let api = TestApi::new().await;
    let (_, mk) = api.tenant("acme", "marketer").await;
    let campaign = api
        .campaign(&mk, json!({"name": "solar", "numbers": ["+18005550100"]}))
        .await;
    let cid = str_field(&campaign, "id");
    let dni = format!("/v1/campaigns/{cid}/dni-sessions");
    let (status, missing) = api.call("POST", &dni, Some(&mk), Some(json!({}))).await;
    assert_eq!(
        (status, missing["error"]["code"].clone()),
        (404, json!("pool.not_found"))
    );
    let (status, pool) = api
        .call(
            "PUT",
            &format!("/v1/campaigns/{cid}/pool"),
            Some(&mk),
            Some(json!({"numbers": ["+18005550201", "+18005550202"], "ttl_s": 1800})),
        )
        .await;
    assert_eq!(status, 200, "{pool}");

    let visit = |attrs: serde_json::Value| json!({"attributes": attrs});
    let (status, first) = api
        .call(
            "POST",
            &dni,
            Some(&mk),
            Some(visit(json!({"source": "google-ads"}))),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(
        (first["number"].clone(), first["pooled"].clone()),
        (json!("+18005550201"), json!(true))
    );
    let session = str_field(&first, "session_id");
    let (_, renewed) = api
        .call(
            "POST",
            &dni,
            Some(&mk),
            Some(json!({"session_id": session})),
        )
        .await;
    assert_eq!(
        renewed["number"], first["number"],
        "renewal keeps the number"
    );
    assert_eq!(renewed["session_id"], first["session_id"]);
    let (_, second) = api
        .call(
            "POST",
            &dni,
            Some(&mk),
            Some(visit(json!({"source": "tv"}))),
        )
        .await;
    assert_eq!(second["number"], json!("+18005550202"));
    let (_, exhausted) = api
        .call("POST", &dni, Some(&mk), Some(visit(json!({}))))
        .await;
    assert_eq!(
        (
            exhausted["number"].clone(),
            exhausted["pooled"].clone(),
            exhausted["session_id"].clone()
        ),
        (json!("+18005550100"), json!(false), json!(null))
    );
    let (_, pool) = api
        .call("GET", &format!("/v1/campaigns/{cid}/pool"), Some(&mk), None)
        .await;
    assert_eq!(pool["exhausted_count"], json!(1));
    assert_eq!(
        api.state.metrics.counter(
            "plugboard_dni_assignments_total",
            &vec![("result", "exhausted".to_owned())]
        ),
        1
    );

    let at = first["expires_at"].as_i64().expect("expiry") - 60;
    let (status, attributed) = api
        .call(
            "GET",
            &format!("{dni}?number=8005550201&at={at}"),
            Some(&mk),
            None,
        )
        .await;
    assert_eq!(status, 200, "{attributed}");
    assert_eq!(attributed["attributes"], json!({"source": "google-ads"}));
    let after = first["expires_at"].as_i64().expect("expiry") + 1;
    let (status, _) = api
        .call(
            "GET",
            &format!("{dni}?number=8005550201&at={after}"),
            Some(&mk),
            None,
        )
        .await;
    assert_eq!(
        status, 404,
        "nobody held the number after the session expired"
    );

    // A pooled number cannot be a static number of another campaign.
    let (status, _) = api
        .call(
            "POST",
            "/v1/campaigns",
            Some(&mk),
            Some(json!({"name": "x", "numbers": ["+18005550201"]})),
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_version_failing_its_test_vectors_cannot_be_activated() {
    let api = TestApi::new().await;
    let (_, mk) = api.tenant("acme", "marketer").await;
    let uploaded = api
        .upload(&mk, "scorer", example_policy("geo-history-scorer"))
        .await;
    let (id, version) = (str_field(&uploaded, "id"), str_field(&uploaded, "version"));
    let sample: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../example-policies/geo-history-scorer/sample.json"
        ))
        .expect("sample"),
    )
    .expect("JSON");
    let vectors = format!("/v1/policies/{id}/versions/{version}/test-vectors");
    let wrong = json!([{"name": "paid traffic scores 99", "input": sample, "expect": {"score": 99, "tags": []}}]);
    let (status, _) = api.call("PUT", &vectors, Some(&mk), Some(wrong)).await;
    assert_eq!(status, 200);
    let deployment = format!("/v1/policies/{id}/deployment");
    let (status, refused) = api
        .call(
            "PUT",
            &deployment,
            Some(&mk),
            Some(json!({"active": version})),
        )
        .await;
    assert_eq!(status, 422);
    expect![[r#"
        {
          "error": {
            "code": "deployment.test_vector_failed",
            "message": "version 294577356a2e3bdd fails its test vector `paid traffic scores 99`: expected {\"score\":99,\"tags\":[]}, got {\"score\":85,\"tags\":[\"business-hours\",\"repeat-caller\",\"paid-traffic\",\"keyword\",\"verified-caller\"]}"
          }
        }"#]]
    .assert_eq(&redact(&refused));
    let (_, unchanged) = api.call("GET", &deployment, Some(&mk), None).await;
    assert_eq!(unchanged["active"], json!(null), "nothing was activated");
    assert!(api.state.policies.registry().get(&id).is_none());

    let right = json!([{"name": "paid traffic", "input": sample, "expect":
        {"score": 85, "tags": ["business-hours", "repeat-caller", "paid-traffic", "keyword", "verified-caller"]}}]);
    let (status, _) = api.call("PUT", &vectors, Some(&mk), Some(right)).await;
    assert_eq!(status, 200);
    let (status, active) = api
        .call(
            "PUT",
            &deployment,
            Some(&mk),
            Some(json!({"active": version})),
        )
        .await;
    assert_eq!((status, active["active"].clone()), (200, json!(version)));
}

#[tokio::test]
async fn metrics_are_declared_at_zero_and_http_requests_counted_by_route_template() {
    let api = TestApi::new().await;
    let fresh = api.metrics().await;
    for line in [
        "plugboard_calls_total{outcome=\"answered\"} 0",
        "plugboard_calls_total{outcome=\"failed\"} 0",
        "plugboard_sip_refused_total{reason=\"rate\"} 0",
        "plugboard_active_calls 0",
        "# TYPE plugboard_rtb_answers_total counter",
        "# HELP plugboard_connections_refused_total SIP connections refused",
        "# TYPE plugboard_post_dial_delay_seconds histogram",
    ] {
        assert!(fresh.contains(line), "{line} missing from\n{fresh}");
    }
    let (_, mk) = api.tenant("acme", "marketer").await;
    let campaign = api.campaign(&mk, json!({"name": "Solar"})).await;
    let id = str_field(&campaign, "id");
    for _ in 0..2 {
        let (status, _) = api
            .call("GET", &format!("/v1/campaigns/{id}"), Some(&mk), None)
            .await;
        assert_eq!(status, 200);
    }
    let (status, _) = api
        .call("GET", "/v1/campaigns/cmp_0000000000000000", Some(&mk), None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = api.call("GET", "/v1/no-such-thing/123", None, None).await;
    assert_eq!(status, 404);
    let text = api.metrics().await;
    for line in [
        "plugboard_http_requests_total{method=\"GET\",route=\"/v1/campaigns/{id}\",status=\"200\"} 2",
        "plugboard_http_requests_total{method=\"GET\",route=\"/v1/campaigns/{id}\",status=\"404\"} 1",
        "plugboard_http_requests_total{method=\"POST\",route=\"/v1/campaigns\",status=\"201\"} 1",
        "plugboard_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    assert!(!text.contains("no-such-thing"), "a path is never a label");
}

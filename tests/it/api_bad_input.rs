//! Bad input gets a clear error in the API's format and changes nothing
//! stored (asserted by reading everything back before and after).

use expect_test::{Expect, expect};
use serde_json::json;
use tests::{TestApi, example_policy, str_field, test_guest};

/// Everything the store holds that the API can list, as one JSON text.
async fn everything(api: &TestApi, keys: &[&str]) -> String {
    let mut all = Vec::new();
    for key in keys {
        for path in [
            "/v1/campaigns",
            "/v1/bidders",
            "/v1/bids",
            "/v1/policies",
            "/v1/api-keys",
        ] {
            let (_, body) = api.call("GET", path, Some(key), None).await;
            all.push(json!({"key": key, "path": path, "body": body}));
        }
    }
    serde_json::to_string(&all).unwrap_or_default()
}

async fn refused(
    api: &TestApi,
    keys: &[&str],
    request: (&str, &str, &str, Vec<u8>, &str),
    expected: Expect,
) {
    let before = everything(api, keys).await;
    let (method, path, key, body, content_type) = request;
    let (status, reply) = api
        .raw(method, path, Some(key), Some(body), content_type)
        .await;
    expected.assert_eq(&format!("{status} {}", reply["error"]));
    assert_eq!(
        everything(api, keys).await,
        before,
        "{method} {path} changed the store"
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let api = TestApi::new().await;
    let (_, mk) = api.tenant("acme", "marketer").await;
    let (_, bd) = api.tenant("buyer", "bidder").await;
    let c = api
        .campaign(&mk, json!({"name": "solar", "numbers": ["+18005550100"]}))
        .await;
    let cid = str_field(&c, "id");
    let keys = [mk.as_str(), bd.as_str()];
    let json_body = |text: &str| text.as_bytes().to_vec();

    refused(
        &api,
        &keys,
        ("POST", "/v1/campaigns", &mk, json_body("{\"name\": \"x\", "), "application/json"),
        expect![[r#"400 {"code":"request.malformed_json","message":"Failed to parse the request body as JSON: EOF while parsing a value at line 1 column 14"}"#]],
    )
    .await;
    refused(
        &api,
        &keys,
        ("POST", "/v1/campaigns", &mk, json_body(r#"{"name": 42}"#), "application/json"),
        expect![[r#"422 {"code":"request.invalid_field","message":"Failed to deserialize the JSON body into the target type: name: invalid type: integer `42`, expected a string at line 1 column 11"}"#]],
    )
    .await;
    refused(
        &api,
        &keys,
        ("POST", "/v1/campaigns", &mk, json_body(r#"{"name": "x", "colour": "red"}"#), "application/json"),
        expect![[r#"422 {"code":"request.invalid_field","message":"Failed to deserialize the JSON body into the target type: colour: unknown field `colour`, expected one of `name`, `numbers`, `floor_price_micros`, `fallback_target`, `scorer_policy_id`, `selector_policy_id`, `shared_attribution_keys`, `bidder_access`, `early_ringback`, `auction_timeout_ms` at line 1 column 22"}"#]],
    )
    .await;
    refused(
        &api,
        &keys,
        ("POST", "/v1/campaigns", &mk, json_body(r#"{"name": "x", "numbers": ["555-CALL-NOW"]}"#), "application/json"),
        expect![[r#"422 {"code":"number.invalid","message":"`555-CALL-NOW` is not a phone number in E.164 (+ and 8 to 15 digits): only digits, spaces, dashes, dots and parentheses are allowed"}"#]],
    )
    .await;
    refused(
        &api,
        &keys,
        ("POST", "/v1/campaigns", &mk, json_body(r#"{"name": "x"}"#), "text/plain"),
        expect![[r#"415 {"code":"request.content_type","message":"expected `Content-Type: application/json`"}"#]],
    )
    .await;
    let huge = format!(r#"{{"name": "{}"}}"#, "x".repeat(1 << 20));
    refused(
        &api,
        &keys,
        (
            "POST",
            "/v1/campaigns",
            &mk,
            huge.into_bytes(),
            "application/json",
        ),
        expect![[r#"413 {"code":"request.too_large","message":"the request body is too large"}"#]],
    )
    .await;
    refused(
        &api,
        &keys,
        ("PATCH", &format!("/v1/campaigns/{cid}"), &mk, json_body(r#"{"fallback_target": "tel:+18005550100"}"#), "application/json"),
        expect![[r#"422 {"code":"request.invalid_field","message":"`fallback_target` must start with sip: or sips:; a target is a SIP URI such as sip:sales@192.0.2.10:5060"}"#]],
    )
    .await;
    refused(
        &api,
        &keys,
        (
            "PATCH",
            &format!("/v1/campaigns/{cid}"),
            &mk,
            json_body(r#"{"scorer_policy_id": "pol_nope"}"#),
            "application/json",
        ),
        expect![[r#"422 {"code":"policy.not_found","message":"no policy pol_nope you may use"}"#]],
    )
    .await;

    // Uploads.
    refused(
        &api,
        &keys,
        ("POST", "/v1/policies?world=scorer", &mk, b"MZ\x90\x00 not wasm".to_vec(), "application/wasm"),
        expect![[r#"422 {"code":"policy.not_wasm","message":"not a WebAssembly binary (no `\\0asm` header)"}"#]],
    )
    .await;
    refused(
        &api,
        &keys,
        ("POST", "/v1/policies?world=scorer", &mk, test_guest("hostile-scorer.core.wasm"), "application/wasm"),
        expect![[r#"422 {"code":"policy.not_a_component","message":"a core WebAssembly module, not a component: build the policy with the guest SDK (or wrap the module with `wasm-tools component new`)"}"#]],
    )
    .await;
    refused(
        &api,
        &keys,
        ("POST", "/v1/policies?world=scorer", &mk, example_policy("answer-rate-selector"), "application/wasm"),
        expect![[r#"422 {"code":"policy.wrong_world","message":"the component does not implement the scorer world: it exports `select` (a selector policy?) instead of `score`"}"#]],
    )
    .await;
    refused(
        &api,
        &keys,
        ("POST", "/v1/policies?world=scorer", &mk, test_guest("wasi-filesystem-scorer.wasm"), "application/wasm"),
        expect![[r#"422 {"code":"policy.forbidden_import","message":"the component imports `wasi:io/poll@0.2.6`, which the scorer world does not provide"}"#]],
    )
    .await;
    refused(
        &api,
        &keys,
        ("POST", "/v1/policies?world=bidder", &mk, example_policy("state-hour-bidder"), "application/wasm"),
        expect![[r#"403 {"code":"auth.forbidden_role","message":"a marketer key may not upload a bidder policy"}"#]],
    )
    .await;
    let mut oversized = example_policy("geo-history-scorer");
    oversized.resize((10 << 20) + 2, 0);
    refused(
        &api,
        &keys,
        ("POST", "/v1/policies?world=scorer", &mk, oversized, "application/wasm"),
        expect![[r#"413 {"code":"policy.too_large","message":"the component is larger than the upload limit"}"#]],
    )
    .await;
    refused(
        &api,
        &keys,
        ("POST", "/v1/policies?world=auditor", &mk, example_policy("geo-history-scorer"), "application/wasm"),
        expect![[r#"400 {"code":"request.invalid_query","message":"Failed to deserialize query string: world: unknown variant `auditor`, expected one of `scorer`, `bidder`, `selector`"}"#]],
    )
    .await;
    refused(
        &api,
        &keys,
        (
            "POST",
            "/v1/bids",
            &bd,
            json_body(&format!(
                r#"{{"campaign_id": "{cid}", "target_id": "tgt_nope", "amount_micros": 5}}"#
            )),
            "application/json",
        ),
        expect![[r#"422 {"code":"target.not_found","message":"no such target of yours"}"#]],
    )
    .await;
}

#[tokio::test]
async fn bid_schedules_need_a_real_time_zone_and_sane_hours() {
    let api = TestApi::new().await;
    let (_, mk) = api.tenant("acme", "marketer").await;
    let (_, bd) = api.tenant("buyer", "bidder").await;
    let c = api.campaign(&mk, json!({"name": "solar"})).await;
    let (_, b) = api
        .call("POST", "/v1/bidders", Some(&bd), Some(json!({"name": "b"})))
        .await;
    let (_, t) = api
        .call(
            "POST",
            &format!("/v1/bidders/{}/targets", str_field(&b, "id")),
            Some(&bd),
            Some(json!({"uri": "sip:a@127.0.0.1"})),
        )
        .await;
    let bid = |extra: serde_json::Value| {
        let mut body = json!({"campaign_id": str_field(&c, "id"), "target_id": str_field(&t, "id"), "amount_micros": 10});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        body
    };
    let (status, ok) = api
        .call(
            "POST",
            "/v1/bids",
            Some(&bd),
            Some(bid(json!({"time_zone": "America/Chicago",
            "schedule": [{"weekdays": [0, 1, 2, 3, 4], "open": "09:00", "close": "17:30"}]}))),
        )
        .await;
    assert_eq!(status, 201, "{ok}");
    for (extra, message) in [
        (
            json!({"time_zone": "Mars/Olympus"}),
            "`time_zone` \"Mars/Olympus\" is not an IANA time zone such as America/New_York",
        ),
        (
            json!({"schedule": [{"weekdays": [7], "open": "09:00", "close": "17:00"}]}),
            "schedule `weekdays` are 0 (Monday) to 6 (Sunday)",
        ),
        (
            json!({"schedule": [{"weekdays": [1], "open": "17:00", "close": "09:00"}]}),
            "schedule `open` and `close` are HH:MM with open before close",
        ),
        (
            json!({"schedule": [{"weekdays": [1], "open": "9am", "close": "17:00"}]}),
            "schedule `open` and `close` are HH:MM with open before close",
        ),
        (
            json!({"duplicate_window_days": 0}),
            "`duplicate_window_days` must be 1 to 365",
        ),
        (
            json!({"hourly_cap": 5, "monthly_payout_cap_micros": 0}),
            "`monthly_payout_cap_micros` must be positive (leave it out for none)",
        ),
        (
            json!({"daily_cap": -1}),
            "Failed to deserialize the JSON body into the target type: daily_cap: invalid value: integer `-1`, expected u32 at line 1 column 71",
        ),
    ] {
        let (status, refused) = api
            .call("POST", "/v1/bids", Some(&bd), Some(bid(extra)))
            .await;
        assert_eq!(
            (status, refused["error"]["message"].clone()),
            (422, json!(message))
        );
    }
    let (_, bids) = api.call("GET", "/v1/bids", Some(&bd), None).await;
    assert_eq!(
        bids.as_array().map(Vec::len),
        Some(1),
        "refused bids were not stored"
    );
}

#[tokio::test]
async fn a_target_with_a_bad_pause_rule_is_refused_and_not_stored() {
    let api = TestApi::new().await;
    let (_, bd) = api.tenant("buyer", "bidder").await;
    let (_, b) = api
        .call("POST", "/v1/bidders", Some(&bd), Some(json!({"name": "b"})))
        .await;
    let path = format!("/v1/bidders/{}/targets", str_field(&b, "id"));
    for (extra, message) in [
        (
            json!({"miss_limit": 1001}),
            "`miss_limit` must be 0 to 1000",
        ),
        (json!({"pause_s": 0}), "`pause_s` must be 1 to 86400"),
    ] {
        let mut body = json!({"uri": "sip:a@127.0.0.1"});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        let (status, refused) = api.call("POST", &path, Some(&bd), Some(body)).await;
        assert_eq!(
            (status, refused["error"]["message"].clone()),
            (422, json!(message))
        );
    }
    let (status, targets) = api.call("GET", &path, Some(&bd), None).await;
    assert_eq!((status, targets), (200, json!([])));
}

#[tokio::test]
async fn a_wrong_api_key_is_refused_before_anything_is_read() {
    let api = TestApi::new().await;
    for header in [None, Some("pbk_0000")] {
        let (status, body) = api.call("GET", "/v1/campaigns", header, None).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], json!("auth.unauthorized"));
    }
}

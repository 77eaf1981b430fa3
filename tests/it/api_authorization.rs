//! The authorization matrix, driven by the OpenAPI document so that no route
//! escapes it: every operation × no key / a bad key / every role, on the
//! caller's own objects and on another tenant's.
//!
//! - no key or an unknown key: 401;
//! - a role the operation does not list in its security scopes: 403;
//! - a listed role on its own objects: neither 401 nor 403;
//! - a listed role (not operator) on another tenant's object: 404, never 403.

use std::collections::HashMap;

use serde_json::{Value, json};
use tests::{TestApi, example_policy, str_field};

struct Tenant {
    id: String,
    key: String,
}

/// Objects of one marketer and one bidder tenant ("A").
struct World {
    campaign: String,
    bidder: String,
    target: String,
    bid: String,
    scorer: String,
    bidder_policy: String,
    call: String,
}

async fn build_world(api: &TestApi, marketer: &Tenant, bidder: &Tenant) -> World {
    let (_, c) = api
        .call(
            "POST",
            "/v1/campaigns",
            Some(&marketer.key),
            Some(json!({"name": "c", "numbers": ["+18005550100"]})),
        )
        .await;
    let campaign = str_field(&c, "id");
    let (_, p) = api
        .call(
            "PUT",
            &format!("/v1/campaigns/{campaign}/pool"),
            Some(&marketer.key),
            Some(json!({"numbers": ["+18005550300"]})),
        )
        .await;
    assert!(p["numbers"].is_array(), "{p}");
    let (_, b) = api
        .call(
            "POST",
            "/v1/bidders",
            Some(&bidder.key),
            Some(json!({"name": "b"})),
        )
        .await;
    let bidder_id = str_field(&b, "id");
    let (_, t) = api
        .call(
            "POST",
            &format!("/v1/bidders/{bidder_id}/targets"),
            Some(&bidder.key),
            Some(json!({"uri": "sip:a@127.0.0.1"})),
        )
        .await;
    let target = str_field(&t, "id");
    let (_, bid) = api
        .call(
            "POST",
            "/v1/bids",
            Some(&bidder.key),
            Some(json!({"campaign_id": campaign, "target_id": target, "amount_micros": 1_000_000})),
        )
        .await;
    let (_, s) = api
        .raw(
            "POST",
            "/v1/policies?world=scorer",
            Some(&marketer.key),
            Some(example_policy("geo-history-scorer")),
            "application/wasm",
        )
        .await;
    let (_, bp) = api
        .raw(
            "POST",
            "/v1/policies?world=bidder",
            Some(&bidder.key),
            Some(example_policy("state-hour-bidder")),
            "application/wasm",
        )
        .await;
    let record = api
        .state
        .store
        .campaign(&campaign)
        .expect("store")
        .expect("campaign");
    let winner = host::model::Winner {
        bid_id: str_field(&bid, "id"),
        bidder_id: bidder_id.clone(),
        tenant_id: bidder.id.clone(),
        target_id: target.clone(),
        amount_micros: 1_000_000,
    };
    let call = tests::call_record(
        "call_a",
        &record,
        "+14155550123",
        1_795_000_000_000,
        60,
        Some(winner),
        120,
    );
    api.state.store.record_call(&call).expect("call stored");
    World {
        call: call.id,
        campaign,
        bidder: bidder_id,
        target,
        bid: str_field(&bid, "id"),
        scorer: str_field(&s, "id"),
        bidder_policy: str_field(&bp, "id"),
    }
}

/// The concrete request for an operation, on `world`'s objects, as `role`.
fn request(
    path: &str,
    method: &str,
    role: &str,
    tenant: &Tenant,
    w: &World,
) -> (String, Option<Vec<u8>>, &'static str) {
    let policy = if role == "bidder" {
        &w.bidder_policy
    } else {
        &w.scorer
    };
    let deleting = method == "delete";
    let pick = |real: &str| {
        if deleting {
            "missing_000000000000".to_owned()
        } else {
            real.to_owned()
        }
    };
    let concrete = path
        .replace("/v1/tenants/{id}", &format!("/v1/tenants/{}", tenant.id))
        .replace("/v1/api-keys/{id}", "/v1/api-keys/key_missing")
        .replace(
            "/v1/campaigns/{id}",
            &format!("/v1/campaigns/{}", pick(&w.campaign)),
        )
        .replace("{number}", "+18005550100")
        .replace(
            "/v1/bidders/{id}",
            &format!("/v1/bidders/{}", pick(&w.bidder)),
        )
        .replace("{target_id}", &pick(&w.target))
        .replace("/v1/bids/{id}", &format!("/v1/bids/{}", pick(&w.bid)))
        .replace("/v1/policies/{id}", &format!("/v1/policies/{policy}"))
        .replace("/v1/calls/{id}", &format!("/v1/calls/{}", w.call))
        .replace("{version}", "0000000000000000");
    let json = |v: Value| (Some(v.to_string().into_bytes()), "application/json");
    let (body, content_type) = match (method, path) {
        ("post", "/v1/policies") => {
            let world = if role == "bidder" { "bidder" } else { "scorer" };
            let bytes = example_policy(if role == "bidder" {
                "state-hour-bidder"
            } else {
                "geo-history-scorer"
            });
            return (
                format!("{concrete}?world={world}"),
                Some(bytes),
                "application/wasm",
            );
        }
        ("post", "/v1/policies/{id}/versions") => {
            let bytes = example_policy(if role == "bidder" {
                "state-hour-bidder"
            } else {
                "geo-history-scorer"
            });
            (Some(bytes), "application/wasm")
        }
        ("get", "/v1/campaigns/{id}/dni-sessions") => {
            return (format!("{concrete}?number=+18005550300"), None, "");
        }
        ("post", "/v1/tenants") => json(json!({"name": "t", "role": "bidder"})),
        ("post", "/v1/campaigns") => json(json!({"name": "c2"})),
        ("put", "/v1/campaigns/{id}") => json(json!({"name": "c3"})),
        ("patch", "/v1/campaigns/{id}") => json(json!({"early_ringback": true})),
        ("patch", "/v1/bidders/{id}") => json(json!({"name": "b3"})),
        ("patch", "/v1/bidders/{id}/targets/{target_id}") => json(json!({"pause_s": 60})),
        ("patch", "/v1/bids/{id}") => json(json!({"min_quality": 5})),
        ("post", "/v1/campaigns/{id}/numbers") => json(json!({"number": "+18005550999"})),
        ("put", "/v1/campaigns/{id}/pool") => json(json!({"numbers": ["+18005550300"]})),
        ("post", "/v1/campaigns/{id}/dni-sessions") => json(json!({})),
        ("post", "/v1/bidders") | ("put", "/v1/bidders/{id}") => json(json!({"name": "b2"})),
        ("post", "/v1/bidders/{id}/targets") | ("put", "/v1/bidders/{id}/targets/{target_id}") => {
            json(json!({"uri": "sip:b@127.0.0.1"}))
        }
        ("post", "/v1/bids") | ("put", "/v1/bids/{id}") => json(
            json!({"campaign_id": w.campaign, "target_id": w.target, "amount_micros": 2_000_000}),
        ),
        ("put", "/v1/policies/{id}/deployment") => json(json!({"active": null})),
        ("put", "/v1/policies/{id}/versions/{version}/test-vectors") => json(json!([])),
        ("post", "/v1/policies/{id}/dry-run") => json(json!({"input": {}})),
        ("post", "/v1/policies/{id}/versions/{version}/replay") => json(json!({})),
        _ => (None, ""),
    };
    (concrete, body, content_type)
}

#[tokio::test]
async fn every_route_every_role_own_and_foreign() {
    let api = TestApi::new().await;
    let operator = Tenant {
        id: api.state.store.tenants().expect("tenants")[0].id.clone(),
        key: api.operator_key.clone(),
    };
    let mut tenants: HashMap<(&str, char), Tenant> = HashMap::new();
    for role in ["marketer", "bidder"] {
        for side in ['a', 'b'] {
            let (id, key) = api.tenant(&format!("{role}-{side}"), role).await;
            tenants.insert((role, side), Tenant { id, key });
        }
    }
    let world_a = build_world(
        &api,
        &tenants[&("marketer", 'a')],
        &tenants[&("bidder", 'a')],
    )
    .await;

    let (_, openapi) = api.call("GET", "/v1/openapi.json", None, None).await;
    let mut checked = 0;
    let mut failures = Vec::new();
    for (path, operations) in openapi["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            let scopes: Vec<String> = operation["security"][0]["bearer"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .filter_map(|r| r.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let verb = method.to_uppercase();
            if scopes.is_empty() {
                let (status, _) = api.call(&verb, path, None, None).await;
                if status != 200 {
                    failures.push(format!("{verb} {path} (public): {status}"));
                }
                continue;
            }
            let (url, _, _) = request(
                path,
                method,
                "marketer",
                &tenants[&("marketer", 'a')],
                &world_a,
            );
            for key in [None, Some("pbk_not_a_key")] {
                let (status, _) = api.raw(&verb, &url, key, None, "").await;
                if status != 401 {
                    failures.push(format!(
                        "{verb} {path} with key {key:?}: {status}, expected 401"
                    ));
                }
            }
            for role in ["operator", "marketer", "bidder"] {
                let own = if role == "operator" {
                    &operator
                } else {
                    &tenants[&(role, 'a')]
                };
                let (url, body, content_type) = request(path, method, role, own, &world_a);
                let (status, reply) = api
                    .raw(&verb, &url, Some(&own.key), body, content_type)
                    .await;
                let allowed = scopes.iter().any(|s| s == role);
                let as_expected = if allowed {
                    !matches!(status, 401 | 403)
                } else {
                    status == 403
                };
                if !as_expected {
                    failures.push(format!(
                        "{verb} {path} as {role}: {status} {reply}, allowed: {allowed}"
                    ));
                }
                if allowed
                    && role != "operator"
                    && path.contains("{id}")
                    && !path.starts_with("/v1/api-keys")
                {
                    let foreign = &tenants[&(role, 'b')];
                    let (url, body, content_type) =
                        request(path, method, role, &tenants[&(role, 'a')], &world_a);
                    let (status, reply) = api
                        .raw(&verb, &url, Some(&foreign.key), body, content_type)
                        .await;
                    if status != 404 {
                        failures.push(format!(
                            "{verb} {url} as another {role}: {status} {reply}, expected 404"
                        ));
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        checked >= 40 * 3,
        "only {checked} checks: did routes go missing from the OpenAPI document?"
    );
}

//! One update semantics for every resource: `PUT` replaces the whole
//! object (a field left out is back to its default), `PATCH` takes a JSON
//! Merge Patch (RFC 7396) and changes the fields it names and no other.

use serde_json::{Value, json};
use tests::{TestApi, str_field};

/// PATCHes each `(field, value)` alone onto the object at `path` and checks
/// that the answer has the new value and every other field as it was.
async fn each_field_alone_changes_only_itself(
    api: &TestApi,
    key: &str,
    path: &str,
    mut object: Value,
    changes: &[(&str, Value)],
) {
    for (field, value) in changes {
        let (status, patched) = api
            .call("PATCH", path, Some(key), Some(json!({ *field: value })))
            .await;
        assert_eq!(status, 200, "PATCH {path} {field}: {patched}");
        assert_eq!(&patched[*field], value, "PATCH {path} {field}");
        assert_ne!(
            &object[*field], value,
            "{field}: pick a value it does not have yet"
        );
        for (other, was) in object.as_object().expect("an object") {
            if other != field {
                assert_eq!(&patched[other], was, "PATCH {path} {field} changed {other}");
            }
        }
        object = patched;
    }
}

#[tokio::test]
async fn a_patch_changes_the_fields_it_names_and_no_other() {
    let api = TestApi::new().await;
    let (_, mk) = api.tenant("acme", "marketer").await;
    let (buyer_tenant, bk) = api.tenant("buyer", "bidder").await;

    let campaign = api
        .campaign(
            &mk,
            json!({
                "name": "Solar", "numbers": ["+18005550100"], "floor_price_micros": 5_000_000,
                "fallback_target": "sip:fallback@127.0.0.1:5090",
                "shared_attribution_keys": ["utm_source"], "early_ringback": true,
                "auction_timeout_ms": 250, "bidder_access": {"kind": "all"}
            }),
        )
        .await;
    let cid = str_field(&campaign, "id");
    each_field_alone_changes_only_itself(
        &api,
        &mk,
        &format!("/v1/campaigns/{cid}"),
        campaign,
        &[
            ("name", json!("Solar West")),
            ("numbers", json!(["+18005550101", "+18005550102"])),
            ("floor_price_micros", json!(7_000_000)),
            ("fallback_target", json!("sip:other@127.0.0.1:5091")),
            ("shared_attribution_keys", json!(["gclid"])),
            ("early_ringback", json!(false)),
            ("auction_timeout_ms", json!(400)),
            (
                "bidder_access",
                json!({"kind": "only", "tenants": [buyer_tenant]}),
            ),
        ],
    )
    .await;

    let bidder = api
        .bidder(
            &bk,
            json!({"name": "Buyer", "rtb_url": "https://bids.example.com/a"}),
        )
        .await;
    let bidder_id = str_field(&bidder, "id");
    each_field_alone_changes_only_itself(
        &api,
        &bk,
        &format!("/v1/bidders/{bidder_id}"),
        bidder,
        &[
            ("name", json!("Buyer Two")),
            ("rtb_url", json!("https://bids.example.com/b")),
        ],
    )
    .await;

    let (status, target) = api
        .call(
            "POST",
            &format!("/v1/bidders/{bidder_id}/targets"),
            Some(&bk),
            Some(json!({
                "name": "Denver", "uri": "sip:sales@127.0.0.1:5070", "ring_timeout_s": 30, "max_concurrent": 100,
                "miss_limit": 5, "pause_s": 600, "follow_redirects": true
            })),
        )
        .await;
    assert_eq!(status, 201, "{target}");
    let target_id = str_field(&target, "id");
    let target_path = format!("/v1/bidders/{bidder_id}/targets/{target_id}");
    each_field_alone_changes_only_itself(
        &api,
        &bk,
        &target_path,
        target,
        &[
            ("name", json!("Denver call centre")),
            ("uri", json!("sip:sales@127.0.0.1:5071")),
            ("ring_timeout_s", json!(45)),
            ("max_concurrent", json!(200)),
            ("miss_limit", json!(0)),
            ("pause_s", json!(60)),
            ("follow_redirects", json!(false)),
        ],
    )
    .await;

    let (status, bid) = api
        .call(
            "POST",
            "/v1/bids",
            Some(&bk),
            Some(json!({
                "campaign_id": cid, "target_id": target_id, "amount_micros": 25_000_000,
                "min_quality": 10, "min_duration_s": 60, "hourly_cap": 5, "daily_cap": 50,
                "monthly_cap": 500, "hourly_payout_cap_micros": 1_000_000_000,
                "time_zone": "America/New_York", "duplicate_window_days": 7,
                "schedule": [{"weekdays": [0, 1, 2, 3, 4], "open": "09:00", "close": "17:00"}]
            })),
        )
        .await;
    assert_eq!(status, 201, "{bid}");
    let bid_id = str_field(&bid, "id");
    each_field_alone_changes_only_itself(
        &api,
        &bk,
        &format!("/v1/bids/{bid_id}"),
        bid,
        &[
            ("amount_micros", json!(30_000_000)),
            ("min_quality", json!(20)),
            ("min_duration_s", json!(120)),
            ("hourly_cap", json!(6)),
            ("daily_cap", json!(60)),
            ("monthly_cap", json!(600)),
            ("daily_payout_cap_micros", json!(9_000_000_000u64)),
            ("time_zone", json!("America/Chicago")),
            ("duplicate_window_days", json!(30)),
            (
                "schedule",
                json!([{"weekdays": [5, 6], "open": "10:00", "close": "14:00"}]),
            ),
        ],
    )
    .await;

    // `null` resets a field to what leaving it out of a PUT means, and
    // leaves the others.
    let (status, reset) = api
        .call(
            "PATCH",
            &target_path,
            Some(&bk),
            Some(json!({"max_concurrent": null})),
        )
        .await;
    assert_eq!(status, 200, "{reset}");
    assert_eq!(
        (
            &reset["max_concurrent"],
            &reset["ring_timeout_s"],
            &reset["pause_s"]
        ),
        (&json!(10), &json!(45), &json!(60))
    );
    // What a PUT would refuse, a PATCH refuses too, and nothing changes.
    for bad in [
        json!({"ring_timeout_s": 0}),
        json!({"uri": null}),
        json!({"colour": "red"}),
    ] {
        let (status, body) = api
            .call("PATCH", &target_path, Some(&bk), Some(bad.clone()))
            .await;
        assert_eq!(status, 422, "{bad} → {body}");
    }
    let (_, targets) = api
        .call(
            "GET",
            &format!("/v1/bidders/{bidder_id}/targets"),
            Some(&bk),
            None,
        )
        .await;
    let mut listed = targets[0].clone();
    listed.as_object_mut().expect("a target").remove("status");
    assert_eq!(listed, reset);
}

#[tokio::test]
async fn a_put_replaces_the_whole_object() {
    let api = TestApi::new().await;
    let (_, bk) = api.tenant("buyer", "bidder").await;
    let bidder = api.bidder(&bk, json!({"name": "Buyer"})).await;
    let bidder_id = str_field(&bidder, "id");
    let (_, target) = api
        .call(
            "POST",
            &format!("/v1/bidders/{bidder_id}/targets"),
            Some(&bk),
            Some(json!({"uri": "sip:sales@127.0.0.1:5070", "max_concurrent": 100})),
        )
        .await;
    let target_id = str_field(&target, "id");
    let (status, replaced) = api
        .call(
            "PUT",
            &format!("/v1/bidders/{bidder_id}/targets/{target_id}"),
            Some(&bk),
            Some(json!({"uri": "sip:sales@127.0.0.1:5071"})),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(
        replaced["max_concurrent"], 10,
        "left out of a PUT: the default"
    );
    assert_eq!(replaced["created_at"], target["created_at"]);

    let (_, mk) = api.tenant("acme", "marketer").await;
    let campaign = api
        .campaign(&mk, json!({"name": "Solar", "early_ringback": true}))
        .await;
    let cid = str_field(&campaign, "id");
    let (status, body) = api
        .call(
            "PUT",
            &format!("/v1/campaigns/{cid}"),
            Some(&mk),
            Some(json!({"early_ringback": false})),
        )
        .await;
    assert_eq!(status, 422, "a PUT names every required field: {body}");
    let (status, replaced) = api
        .call(
            "PUT",
            &format!("/v1/campaigns/{cid}"),
            Some(&mk),
            Some(json!({"name": "Solar"})),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["early_ringback"], false);
}

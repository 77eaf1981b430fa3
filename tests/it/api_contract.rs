//! The OpenAPI document as a contract: a standard validator accepts it, it
//! states the bounds the handlers enforce, and schemathesis, generating
//! requests from it against a real `plugboard serve`, finds no answer that
//! contradicts it (undocumented statuses, bodies off their schema, invalid
//! data accepted, server errors).

use std::process::Command;

use serde_json::Value;
use tests::served::{Served, python_tool};

fn document() -> Value {
    serde_json::to_value(host::api::openapi()).expect("the document serialises")
}

#[test]
fn the_openapi_document_passes_a_standard_validator() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, document().to_string()).expect("write the document");
    let run = Command::new(python_tool("openapi-spec-validator"))
        .arg(&file)
        .output()
        .expect("the validator runs");
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );

    // The validator must be able to fail: a path parameter left undeclared.
    let mut broken = document();
    let bidder = &mut broken["paths"]["/v1/bidders/{id}"]["get"];
    bidder
        .as_object_mut()
        .expect("get bidder")
        .remove("parameters");
    std::fs::write(&file, broken.to_string()).expect("write the document");
    let run = Command::new(python_tool("openapi-spec-validator"))
        .arg(&file)
        .output()
        .expect("the validator runs");
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("Path parameter 'id'"),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
}

#[test]
fn every_operation_declares_its_parameters_errors_and_the_handlers_bounds() {
    let document = document();
    let mut operations = 0;
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            operations += 1;
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for segment in path.split('/').filter(|s| s.starts_with('{')) {
                let name = segment.trim_matches(['{', '}']);
                assert!(
                    parameters
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                    "{method} {path}: no path parameter {name}"
                );
            }
            for parameter in parameters.iter().filter(|p| p["in"] == "query") {
                assert!(!path.contains(&format!("{{{}}}", parameter["name"].as_str().unwrap())));
            }
            let responses = operation["responses"].as_object().expect("responses");
            if operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
            {
                for status in ["401", "403", "429"] {
                    let error = &responses[status]["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(
                        error, "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    assert!(operations >= 47, "{operations} operations");

    let schemas = &document["components"]["schemas"];
    let target = &schemas["TargetSpec"]["properties"]["ring_timeout_s"];
    assert_eq!(
        (&target["minimum"], &target["maximum"]),
        (&1.into(), &300.into())
    );
    let name = &schemas["NewCampaign"]["properties"]["name"];
    assert_eq!(
        (&name["minLength"], &name["maxLength"]),
        (&1.into(), &200.into())
    );
    let calls = &document["paths"]["/v1/calls"]["get"]["parameters"];
    let limit = calls
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("limit");
    assert_eq!(
        (limit["in"].as_str(), limit["required"].as_bool()),
        (Some("query"), Some(false))
    );
    assert_eq!(limit["schema"]["maximum"], 500);
}

#[tokio::test]
async fn a_bound_the_document_states_is_the_one_the_api_enforces() {
    let api = tests::TestApi::new().await;
    let (_, bk) = api.tenant("buyer", "bidder").await;
    let bidder = api.bidder(&bk, serde_json::json!({"name": "B"})).await;
    let bidder = tests::str_field(&bidder, "id");
    let max = document()["components"]["schemas"]["TargetSpec"]["properties"]["ring_timeout_s"]
        ["maximum"]
        .as_u64()
        .expect("maximum");
    for (ring, status) in [(max, 201), (max + 1, 422)] {
        let (got, body) = api
            .call(
                "POST",
                &format!("/v1/bidders/{bidder}/targets"),
                Some(&bk),
                Some(
                    serde_json::json!({"uri": "sip:sales@127.0.0.1:5070", "ring_timeout_s": ring}),
                ),
            )
            .await;
        assert_eq!(got, status, "ring_timeout_s {ring}: {body}");
    }
    // Names count characters, as JSON Schema's maxLength does.
    let (got, body) = api
        .call(
            "POST",
            "/v1/bidders",
            Some(&bk),
            Some(serde_json::json!({"name": "é".repeat(200)})),
        )
        .await;
    assert_eq!(got, 201, "{body}");
}

#[test]
fn schemathesis_finds_nothing_the_document_does_not_say() {
    let served = Served::start();
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/schemathesis.toml");
    let run = Command::new(python_tool("schemathesis"))
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/v1/openapi.json", served.http))
        .args(["--checks", "all", "--max-examples", "25", "--seed", "1"])
        .args(["--workers", "1", "--no-color"])
        .arg("--header")
        .arg(format!("Authorization: Bearer {}", served.operator_key))
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let operations: usize = document()["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().map_or(0, |ops| ops.len()))
        .sum();
    assert!(
        report.contains(&format!("{operations}/{operations}")),
        "every operation selected:\n{report}"
    );
    assert!(!report.contains("unique failure"), "{report}");
}

//! What the OpenAPI document promises beyond what the route annotations
//! say, from one source each: the bounds the handlers check (the constants
//! here, used by both), the path parameters (from the path templates), and
//! the error responses (from what the gate and the extractors return).
//!
//! [`complete`] runs on the document the router is built from, so a client
//! generated from `/v1/openapi.json` sees what the server enforces.

use serde_json::{Map, Value, json};

use super::error::ApiError;

/// A field's bounds. Handlers check values with it and the document states
/// it, so the two cannot disagree.
#[derive(Clone, Copy, Debug)]
pub enum Bound {
    /// A string of `min..=max` characters (Unicode scalar values, as JSON
    /// Schema counts them), not only white space.
    Text { min: u64, max: u64 },
    /// An integer in `min..=max`.
    Range { min: u64, max: u64 },
    /// An integer of at least `min`, with no upper bound beyond its type.
    AtLeast(u64),
    /// An array of at most this many items.
    Items(u64),
    /// An object of at most this many members.
    Members(u64),
}

pub const NAME: Bound = Bound::Text { min: 1, max: 200 };
pub const SESSION_ID: Bound = Bound::Text { min: 1, max: 128 };
pub const DNI_ATTRIBUTES: Bound = Bound::Members(32);
pub const RING_TIMEOUT_S: Bound = Bound::Range { min: 1, max: 300 };
pub const MAX_CONCURRENT: Bound = Bound::Range {
    min: 1,
    max: 100_000,
};
pub const MISS_LIMIT: Bound = Bound::Range { min: 0, max: 1000 };
pub const PAUSE_S: Bound = Bound::Range {
    min: 1,
    max: 86_400,
};
pub const AUCTION_TIMEOUT_MS: Bound = Bound::Range { min: 10, max: 5000 };
pub const POOL_TTL_S: Bound = Bound::Range {
    min: 60,
    max: 86_400,
};
pub const FLOOR_PRICE_MICROS: Bound = Bound::Range {
    min: 0,
    max: crate::auction::MAX_AMOUNT_MICROS,
};
pub const MIN_QUALITY: Bound = Bound::Range { min: 0, max: 100 };
pub const PERCENT: Bound = Bound::Range { min: 0, max: 100 };
pub const REPLAY_LIMIT: Bound = Bound::Range {
    min: 1,
    max: 10_000,
};
pub const DEMOTION_WINDOW: Bound = Bound::Range {
    min: 1,
    max: 10_000,
};
pub const AMOUNT_MICROS: Bound = Bound::Range {
    min: 1,
    max: crate::auction::MAX_AMOUNT_MICROS,
};
pub const MIN_DURATION_S: Bound = Bound::Range {
    min: 0,
    max: crate::auction::MAX_MIN_DURATION_S as u64,
};
pub const WINDOW_DAYS: Bound = Bound::Range { min: 1, max: 365 };
pub const CAP: Bound = Bound::AtLeast(1);
pub const CALLS_PAGE: Bound = Bound::Range { min: 1, max: 500 };
pub const TEST_VECTORS: Bound = Bound::Items(100);

impl Bound {
    /// Whether `text` is inside a [`Bound::Text`] (other bounds never hold
    /// text, so they refuse it).
    pub fn admits_text(&self, text: &str) -> bool {
        match *self {
            Bound::Text { min, max } => {
                let chars = text.chars().count() as u64;
                (min..=max).contains(&chars) && (min == 0 || !text.trim().is_empty())
            }
            _ => false,
        }
    }

    pub fn admits(&self, value: u64) -> bool {
        match *self {
            Bound::Range { min, max } => (min..=max).contains(&value),
            Bound::AtLeast(min) => value >= min,
            Bound::Items(max) | Bound::Members(max) => value <= max,
            Bound::Text { .. } => false,
        }
    }

    /// What a value outside the bound is told, naming `field`.
    pub fn rule(&self, field: &str) -> String {
        match *self {
            Bound::Text { min, max } => format!("`{field}` must be {min} to {max} characters"),
            Bound::Range { min, max } => format!("`{field}` must be {min} to {max}"),
            Bound::AtLeast(1) => format!("`{field}` must be positive (leave it out for none)"),
            Bound::AtLeast(min) => format!("`{field}` must be at least {min}"),
            Bound::Items(max) => format!("`{field}` holds at most {max} items"),
            Bound::Members(max) => format!("`{field}` holds at most {max} members"),
        }
    }

    /// 422 unless `text` is inside the bound.
    pub fn check_text(&self, field: &str, text: &str) -> Result<(), ApiError> {
        if self.admits_text(text) {
            Ok(())
        } else {
            Err(ApiError::unprocessable(
                "request.invalid_field",
                self.rule(field),
            ))
        }
    }

    /// 422 unless `value` is inside the bound.
    pub fn check(&self, field: &str, value: u64) -> Result<(), ApiError> {
        if self.admits(value) {
            Ok(())
        } else {
            Err(ApiError::unprocessable(
                "request.invalid_field",
                self.rule(field),
            ))
        }
    }

    /// 400 unless `value` is inside the bound: for query parameters.
    pub fn check_query(&self, field: &str, value: u64) -> Result<(), ApiError> {
        self.check(field, value)
            .map_err(|e| ApiError::bad_request("request.invalid_query", e.message))
    }

    fn describe(&self, schema: &mut Map<String, Value>) {
        let pairs: Vec<(&str, Value)> = match *self {
            Bound::Text { min, max } => vec![
                ("minLength", json!(min)),
                ("maxLength", json!(max)),
                ("pattern", json!("\\S")),
            ],
            Bound::Range { min, max } => vec![("minimum", json!(min)), ("maximum", json!(max))],
            Bound::AtLeast(min) => vec![("minimum", json!(min))],
            Bound::Items(max) => vec![("maxItems", json!(max))],
            Bound::Members(max) => vec![("maxProperties", json!(max))],
        };
        for (key, value) in pairs {
            schema.insert(key.to_owned(), value);
        }
    }
}

/// Request bodies' fields: (component schema, property, bound).
const FIELDS: &[(&str, &str, Bound)] = &[
    ("NewTenant", "name", NAME),
    ("BidderSpec", "name", NAME),
    ("NewCampaign", "name", NAME),
    ("NewCampaign", "auction_timeout_ms", AUCTION_TIMEOUT_MS),
    ("NewCampaign", "floor_price_micros", FLOOR_PRICE_MICROS),
    ("TargetSpec", "name", NAME),
    ("TargetSpec", "ring_timeout_s", RING_TIMEOUT_S),
    ("TargetSpec", "max_concurrent", MAX_CONCURRENT),
    ("TargetSpec", "miss_limit", MISS_LIMIT),
    ("TargetSpec", "pause_s", PAUSE_S),
    ("BidSpec", "amount_micros", AMOUNT_MICROS),
    ("BidSpec", "min_quality", MIN_QUALITY),
    ("BidSpec", "min_duration_s", MIN_DURATION_S),
    ("BidSpec", "duplicate_window_days", WINDOW_DAYS),
    ("BidSpec", "hourly_cap", CAP),
    ("BidSpec", "daily_cap", CAP),
    ("BidSpec", "monthly_cap", CAP),
    ("BidSpec", "hourly_payout_cap_micros", CAP),
    ("BidSpec", "daily_payout_cap_micros", CAP),
    ("BidSpec", "monthly_payout_cap_micros", CAP),
    ("PoolSpec", "ttl_s", POOL_TTL_S),
    ("DniRequest", "session_id", SESSION_ID),
    ("DniRequest", "attributes", DNI_ATTRIBUTES),
    ("CanarySpec", "percent", PERCENT),
    ("ReplayRequest", "limit", REPLAY_LIMIT),
    ("ReplayGateSpec", "calls", REPLAY_LIMIT),
    ("ReplayGateSpec", "max_winners_changed_percent", PERCENT),
    ("DemotionRule", "window", DEMOTION_WINDOW),
    ("DemotionRule", "max_failure_percent", PERCENT),
];

/// Query parameters: (path, method, parameter, bound).
const QUERY: &[(&str, &str, &str, Bound)] = &[
    ("/v1/calls", "get", "limit", CALLS_PAGE),
    ("/v1/marketplace", "get", "window_days", WINDOW_DAYS),
    ("/v1/policies", "post", "name", NAME),
];

/// Whole request bodies: (path, method, bound).
const BODIES: &[(&str, &str, Bound)] = &[(
    "/v1/policies/{id}/versions/{version}/test-vectors",
    "put",
    TEST_VECTORS,
)];

/// What a path parameter is, by name.
fn path_parameter_description(name: &str) -> &'static str {
    match name {
        "id" => "The object's id, as returned when it was created",
        "target_id" => "The target's id",
        "number" => "A phone number in E.164 form, e.g. +18005550100",
        "version" => "A policy version: its content hash",
        _ => "A path segment",
    }
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The document with what the annotations leave out filled in. Panics when
/// a bound names a schema or property the document lacks: that is a
/// programming error that every API test would hit at start.
pub fn complete(openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut document = serde_json::to_value(&openapi).expect("the OpenAPI document serialises");
    complete_value(&mut document);
    serde_json::from_value(document).expect("the completed OpenAPI document deserialises")
}

fn complete_value(document: &mut Value) {
    for (schema, property, bound) in FIELDS {
        let target = &mut document["components"]["schemas"][schema]["properties"][property];
        let Some(target) = target.as_object_mut() else {
            panic!("the OpenAPI document has no {schema}.{property} to bound");
        };
        bound.describe(target);
    }
    describe_merge_patches(document);
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            let Some(operation) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            declare_path_parameters(path, operation);
            for (query_path, query_method, name, bound) in QUERY {
                if query_path == path && *query_method == method {
                    bound_query_parameter(operation, name, bound);
                }
            }
            for (body_path, body_method, bound) in BODIES {
                if body_path == path && *body_method == method {
                    let schema =
                        &mut operation["requestBody"]["content"]["application/json"]["schema"];
                    let Some(schema) = schema.as_object_mut() else {
                        panic!("{method} {path} has no JSON body to bound");
                    };
                    bound.describe(schema);
                }
            }
            describe_bytes(operation);
            declare_errors(path, method, operation);
        }
    }
}

fn declare_path_parameters(path: &str, operation: &mut Map<String, Value>) {
    let parameters = operation
        .entry("parameters")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .expect("parameters are a list");
    for name in path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
    {
        parameters.retain(|p| p["name"] != name || p["in"] != "path");
        parameters.push(json!({
            "name": name,
            "in": "path",
            "required": true,
            "description": path_parameter_description(name),
            "schema": {"type": "string", "minLength": 1},
        }));
    }
    if parameters.is_empty() {
        operation.remove("parameters");
    }
}

const MERGE_PATCH: &str = "application/merge-patch+json";

/// A `PATCH` body is annotated with the object's full description (what a
/// `PUT` takes); what it accepts is a JSON Merge Patch of it (RFC 7396):
/// any of its fields, none required, each `null` to reset it. That schema
/// is made here from the full one, as `<Name>Patch`, and the body is also
/// accepted as `application/json`.
fn describe_merge_patches(document: &mut Value) {
    let mut patched = Vec::new();
    if let Some(paths) = document["paths"].as_object_mut() {
        for item in paths.values_mut() {
            let Some(body) = item
                .get_mut("patch")
                .and_then(|o| o.get_mut("requestBody"))
                .and_then(|b| b.get_mut("content"))
            else {
                continue;
            };
            let Some(full) = body[MERGE_PATCH]["schema"]["$ref"].as_str() else {
                continue;
            };
            let name = full.rsplit('/').next().unwrap_or(full).to_owned();
            let schema = json!({"schema": {"$ref": format!("#/components/schemas/{name}Patch")}});
            *body = json!({MERGE_PATCH: schema.clone(), "application/json": schema});
            patched.push(name);
        }
    }
    let schemas = &mut document["components"]["schemas"];
    for name in patched {
        let Some(full) = schemas.get(&name).cloned() else {
            panic!("the OpenAPI document has no {name} to describe a patch of");
        };
        let mut properties = Map::new();
        for (field, schema) in full["properties"].as_object().into_iter().flatten() {
            // An object member is merged in turn: any part of it may be sent.
            let choices = if may_be_object(schema, schemas) {
                json!([schema, {"type": "null"}, {"type": "object"}])
            } else {
                json!([schema, {"type": "null"}])
            };
            properties.insert(field.clone(), json!({"anyOf": choices}));
        }
        schemas[format!("{name}Patch")] = json!({
            "type": "object",
            "description": format!("A JSON Merge Patch (RFC 7396) of a {name}: the fields it names change, `null` resets one to its default, the others stay."),
            "properties": properties,
            "additionalProperties": false,
        });
    }
}

/// Whether a value of `schema` may be a JSON object.
fn may_be_object(schema: &Value, schemas: &Value) -> bool {
    if let Some(name) = schema["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
        return may_be_object(&schemas[name], schemas);
    }
    let types = &schema["type"];
    types == "object"
        || types
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "object"))
        || schema.get("properties").is_some()
        || ["oneOf", "anyOf", "allOf"].iter().any(|key| {
            schema[*key]
                .as_array()
                .is_some_and(|options| options.iter().any(|o| may_be_object(o, schemas)))
        })
}

/// A body that is not JSON (a component upload) is bytes, not the array of
/// integers the annotation's `Vec<u8>` reads as; the server reads the bytes
/// whatever their Content-Type, and generic clients send
/// `application/octet-stream`, so the document offers that too.
fn describe_bytes(operation: &mut Map<String, Value>) {
    let Some(content) = operation
        .get_mut("requestBody")
        .and_then(|b| b.get_mut("content"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let bytes = json!({"schema": {"type": "string", "format": "binary", "minLength": 1}});
    let is_json =
        |media_type: &String| media_type == "application/json" || media_type.ends_with("+json");
    if !content.keys().all(is_json) {
        content.retain(|media_type, _| is_json(media_type));
        content.insert("application/wasm".to_owned(), bytes.clone());
        content.insert("application/octet-stream".to_owned(), bytes);
    }
}

fn bound_query_parameter(operation: &mut Map<String, Value>, name: &str, bound: &Bound) {
    let parameter = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .and_then(|ps| {
            ps.iter_mut()
                .find(|p| p["name"] == name && p["in"] == "query")
        });
    let Some(schema) = parameter.and_then(|p| p["schema"].as_object_mut()) else {
        panic!("the OpenAPI document has no query parameter {name} to bound");
    };
    bound.describe(schema);
}

/// The errors any operation can answer, by what it takes: every error body
/// is an `ErrorBody`.
fn declare_errors(path: &str, method: &str, operation: &mut Map<String, Value>) {
    let secured = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    let has_body = operation.contains_key("requestBody");
    let has_query = operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
    let mut errors: Vec<(&str, &str)> = vec![
        ("414", "The request target is too long"),
        ("500", "The server failed; nothing was changed"),
    ];
    if secured {
        errors.push(("401", "No API key, or not a valid one"));
        errors.push(("403", "The key's role may not do this"));
        errors.push(("429", "Too many requests from this tenant; see Retry-After"));
    }
    if path.contains('{') {
        errors.push(("404", "No such object visible to the caller"));
    }
    if method != "get" {
        errors.push((
            "409",
            "It conflicts with what is stored: a quota reached, a number in use, a pool exhausted",
        ));
    }
    if has_body {
        errors.push(("400", "The body is not well-formed"));
        errors.push(("413", "The body is too large"));
        errors.push(("415", "The body's Content-Type is not the one expected"));
        errors.push((
            "422",
            "A field is missing, of the wrong type or out of its bounds",
        ));
    }
    if has_query {
        errors.push(("400", "A query parameter is missing or malformed"));
        errors.push(("422", "A query parameter names nothing usable"));
    }
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses are an object");
    for (status, description) in errors {
        let response = responses
            .entry(status)
            .or_insert_with(|| json!({"description": description}));
        if response.get("content").is_none() {
            response["content"] = json!({"application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorBody"}
            }});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_bound_counts_characters_and_refuses_blank_text() {
        assert!(NAME.admits_text("Acme"));
        assert!(NAME.admits_text(&"é".repeat(200)));
        assert!(!NAME.admits_text(&"é".repeat(201)));
        assert!(!NAME.admits_text(""));
        assert!(!NAME.admits_text("   "));
    }

    #[test]
    fn ranges_and_their_messages() {
        assert!(RING_TIMEOUT_S.admits(1) && RING_TIMEOUT_S.admits(300));
        assert!(!RING_TIMEOUT_S.admits(0) && !RING_TIMEOUT_S.admits(301));
        assert_eq!(
            RING_TIMEOUT_S.rule("ring_timeout_s"),
            "`ring_timeout_s` must be 1 to 300"
        );
        assert!(!CAP.admits(0) && CAP.admits(u64::MAX));
        assert_eq!(
            CALLS_PAGE.check_query("limit", 0).unwrap_err().status,
            axum::http::StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn path_parameters_come_from_the_template_and_errors_from_what_is_taken() {
        let mut document = json!({"paths": {"/v1/bids/{id}": {"put": {
            "security": [{"bearer": ["bidder"]}],
            "requestBody": {"content": {"application/json": {"schema": {}}}},
            "responses": {"200": {"description": "ok"}}
        }}}});
        let paths = document["paths"].as_object_mut().unwrap();
        let operation = paths["/v1/bids/{id}"]["put"].as_object_mut().unwrap();
        declare_path_parameters("/v1/bids/{id}", operation);
        declare_errors("/v1/bids/{id}", "put", operation);
        assert_eq!(operation["parameters"][0]["name"], "id");
        assert_eq!(operation["parameters"][0]["in"], "path");
        let mut statuses: Vec<&String> =
            operation["responses"].as_object().unwrap().keys().collect();
        statuses.sort();
        assert_eq!(
            statuses,
            [
                "200", "400", "401", "403", "404", "409", "413", "414", "415", "422", "429", "500"
            ]
        );
    }
}

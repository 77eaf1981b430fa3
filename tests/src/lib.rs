//! The test harness: where built guests and binaries are, sample inputs, and
//! renderings of results that snapshots compare.
//!
//! [`TestApi`] drives the HTTP API's router without a socket.
//!
//! Guests are built by `cargo xtask test` (or `cargo xtask policies` and
//! `cargo xtask guests`) before the tests run.

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

pub mod bid_endpoint;
pub mod call_lab;
pub mod dns;
pub mod generated_docs;
pub mod hostile;
pub mod served;
pub mod tls_peer;

use host::model::{CallFacts, CallTime, Geography, Header};
use host::policy::{CompiledPolicy, Invocation, InvocationContext, Limits, MemoryKv, PolicyEngine};

pub use host::model::World;

/// The workspace's target folder, as xtask uses it.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn read_built(path: PathBuf, how: &str) -> Vec<u8> {
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; build it with `{how}`", path.display()))
}

/// The component of `example-policies/<name>`.
pub fn example_policy(name: &str) -> Vec<u8> {
    read_built(
        target_dir().join("policies").join(format!("{name}.wasm")),
        "cargo xtask policies",
    )
}

/// A file built from `tests/guests/*` (`<name>.wasm`, or `<name>.core.wasm`).
pub fn test_guest(file: &str) -> Vec<u8> {
    read_built(
        target_dir().join("test-guests").join(file),
        "cargo xtask guests",
    )
}

/// The example policy crates, by folder name.
pub fn example_policy_names() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../example-policies");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("example-policies/ is listable")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The `plugboard` binary, built by `cargo xtask test` before the tests.
pub fn plugboard_bin() -> PathBuf {
    let bin = target_dir().join("debug").join("plugboard");
    assert!(
        bin.is_file(),
        "{} is missing; run `cargo build -p host`",
        bin.display()
    );
    bin
}

/// An engine with the default limits but a one-second deadline: tests run in
/// parallel on few cores, and a wall-clock deadline also counts the time a
/// thread waits for a core. Tests about deadlines set their own.
pub fn engine() -> PolicyEngine {
    engine_with(Limits {
        deadline: std::time::Duration::from_secs(1),
        ..Limits::default()
    })
}

pub fn engine_with(limits: Limits) -> PolicyEngine {
    PolicyEngine::new(limits).expect("engine starts")
}

pub fn load(engine: &PolicyEngine, world: World, bytes: &[u8]) -> Arc<CompiledPolicy> {
    Arc::new(CompiledPolicy::load(engine, world, bytes, None).expect("policy loads"))
}

/// A fresh context with an empty in-memory key-value store.
pub fn context() -> InvocationContext {
    InvocationContext {
        history: Default::default(),
        kv: Arc::new(MemoryKv::new()),
        kv_namespace: "test-policy".to_owned(),
    }
}

/// A weekday-morning call from San Francisco to a solar campaign.
pub fn sample_call(campaign_id: &str) -> CallFacts {
    CallFacts {
        id: "call-0001".to_owned(),
        campaign_id: campaign_id.to_owned(),
        caller: "+14155550123".to_owned(),
        called: "+18005550100".to_owned(),
        caller_geography: Geography {
            country: "US".to_owned(),
            area_code: "415".to_owned(),
            region: "CA".to_owned(),
            time_zone: "America/Los_Angeles".to_owned(),
        },
        time: CallTime {
            unix_seconds: 1_795_888_800,
            local_weekday: 1,
            local_hour: 10,
            local_minute: 0,
        },
        headers: vec![Header {
            name: "User-Agent".to_owned(),
            value: "carrier-sbc/1.0".to_owned(),
        }],
        attribution: vec![("source".to_owned(), "google-ads".to_owned())],
    }
}

/// The deterministic part of an invocation: outcome and logs (fuel and time
/// vary with the compiler and the machine, so snapshots leave them out).
pub fn render<T: Debug>(invocation: &Invocation<T>) -> String {
    let mut out = format!("{:?}\n", invocation.outcome);
    for line in &invocation.logs {
        out.push_str(&format!(
            "{:?} {} {:?}\n",
            line.level, line.message, line.fields
        ));
    }
    if invocation.logs_dropped > 0 {
        out.push_str(&format!(
            "({} log lines dropped)\n",
            invocation.logs_dropped
        ));
    }
    out
}

/// The API's router over a host started on a temporary data directory.
pub struct TestApi {
    pub state: host::api::ApiState,
    router: axum::Router,
    /// A key of the operator created at start.
    pub operator_key: String,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl TestApi {
    /// A fresh host with one operator.
    pub async fn new() -> Self {
        Self::with_limits(Self::LIMITS).await
    }

    /// Policy budgets of a test host: the default ones, but a deadline
    /// that a loaded test machine does not meet by accident.
    pub const LIMITS: Limits = Limits {
        deadline: std::time::Duration::from_secs(1),
        ..Limits::DEFAULT
    };

    /// A fresh host with one operator, its policies held to `limits`.
    pub async fn with_limits(limits: Limits) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut api = Self::open_with(temp.path(), String::new(), limits).await;
        api.add_operator();
        api._temp = Some(temp);
        api
    }

    /// A fresh host with one operator, on `dir`, which the caller keeps.
    pub async fn at(dir: &std::path::Path) -> Self {
        let mut api = Self::open(dir, String::new()).await;
        api.add_operator();
        api
    }

    /// The host locating targets with `names` (the API when a target is
    /// saved, as the call server does).
    pub fn locating_with(&mut self, names: std::sync::Arc<host::names::Names>) {
        self.state.names = names;
        self.router = host::api::router(self.state.clone());
    }

    fn add_operator(&mut self) {
        let (_, key) = host::api::create_tenant_with_key(
            &self.state.store,
            "operator",
            host::model::Role::Operator,
        )
        .expect("operator");
        self.operator_key = key;
    }

    /// A host on an existing data directory (as after a restart).
    pub async fn open(dir: &std::path::Path, operator_key: String) -> Self {
        Self::open_with(dir, operator_key, Self::LIMITS).await
    }

    async fn open_with(dir: &std::path::Path, operator_key: String, limits: Limits) -> Self {
        let config = host::config::Config {
            sip_listen: vec![([127, 0, 0, 1], 0).into()],
            http_listen: ([127, 0, 0, 1], 0).into(),
            data_dir: dir.to_owned(),
            example_policies: None,
            policy_limits: limits,
            max_calls: host::config::DEFAULT_MAX_CALLS,
            sip_advertise: None,
            sip_quality_headers: true,
            sip_trusted_sources: Vec::new(),
            sip_invite_rate: host::config::DEFAULT_INVITE_RATE,
            sip_first_response: host::b2bua::DEFAULT_FIRST_RESPONSE_TIMEOUT,
            tenant_policy_cpu_percent: host::fair::DEFAULT_TENANT_CPU_PERCENT,
            dns_servers: Vec::new(),
            sip_tls: host::config::SipTls::default(),
            // As a server compiles: in a child of the real binary, with
            // a tighter CPU budget (CPU time, not wall time: a loaded
            // machine does not make it run out).
            policy_compiler: host::policy::Compiler::Process {
                program: plugboard_bin(),
                budget: host::policy::CompileBudget {
                    cpu_seconds: 3,
                    ..host::policy::CompileBudget::default()
                },
            },
        };
        let started = host::runtime::Host::start(&config)
            .await
            .expect("host starts");
        TestApi {
            router: host::api::router(started.state.clone()),
            state: started.state,
            operator_key,
            data_dir: dir.to_owned(),
            _temp: None,
        }
    }

    /// One request; the response's status and JSON body (`null` if not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let body = body.map(|b| b.to_string().into_bytes());
        self.raw(method, path, key, body, "application/json").await
    }

    /// Starts a replay job (`POST` to a version's `/replay`) and waits, up
    /// to a minute, for it to end: the start's status and, when it was
    /// started, the job as it ended (else the refusal).
    pub async fn replay(
        &self,
        path: &str,
        key: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let (status, started) = self.call("POST", path, Some(key), Some(body)).await;
        if status != 202 {
            return (status, started);
        }
        let job = format!("/v1/replays/{}", str_field(&started, "id"));
        for _ in 0..600 {
            let (status, seen) = self.call("GET", &job, Some(key), None).await;
            assert_eq!(status, 200, "{seen}");
            if matches!(seen["state"].as_str(), Some("done" | "failed")) {
                return (202, seen);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("replay job {job} did not end in a minute");
    }

    /// One request with raw bytes as the body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> (u16, serde_json::Value) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let mut request = axum::http::Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        if body.is_some() {
            request = request.header("content-type", content_type);
        }
        let request = request
            .body(axum::body::Body::from(body.unwrap_or_default()))
            .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router answers");
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        });
        (status, json)
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let key = self.operator_key.clone();
        let (status, metrics) = self.call("GET", "/metrics", Some(&key), None).await;
        assert_eq!(status, 200);
        metrics.as_str().expect("text").to_owned()
    }

    /// Creates a campaign through the API (asserting 201); the campaign.
    pub async fn campaign(&self, key: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, campaign) = self
            .call("POST", "/v1/campaigns", Some(key), Some(body))
            .await;
        assert_eq!(status, 201, "{campaign}");
        campaign
    }

    /// Creates a bidder through the API (asserting 201); the bidder.
    pub async fn bidder(&self, key: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, bidder) = self
            .call("POST", "/v1/bidders", Some(key), Some(body))
            .await;
        assert_eq!(status, 201, "{bidder}");
        bidder
    }

    /// Uploads a component as a new policy of `world` (asserting 201).
    pub async fn upload(&self, key: &str, world: &str, component: Vec<u8>) -> serde_json::Value {
        let path = format!("/v1/policies?world={world}");
        let (status, uploaded) = self
            .raw(
                "POST",
                &path,
                Some(key),
                Some(component),
                "application/wasm",
            )
            .await;
        assert_eq!(status, 201, "{uploaded}");
        uploaded
    }

    /// Creates a tenant through the API; its id and key.
    pub async fn tenant(&self, name: &str, role: &str) -> (String, String) {
        let (status, body) = self
            .call(
                "POST",
                "/v1/tenants",
                Some(&self.operator_key),
                Some(serde_json::json!({"name": name, "role": role})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (str_field(&body, "id"), str_field(&body, "api_key"))
    }
}

/// A string field of a JSON object, or a panic naming it.
pub fn str_field(value: &serde_json::Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{field}` in {value}"))
        .to_owned()
}

/// Pretty JSON with what changes from run to run replaced: ids, keys,
/// hashes and timestamps; so that snapshots compare what matters.
pub fn redact(value: &serde_json::Value) -> String {
    fn walk(value: &serde_json::Value, key: Option<&str>) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), walk(v, Some(k))))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| walk(v, key)).collect()),
            Value::Number(_) if key.is_some_and(|k| k.ends_with("_at")) => {
                Value::String("<time>".into())
            }
            Value::String(s) => {
                let prefix = s.split('_').next().unwrap_or_default();
                if s.starts_with("pbk_") {
                    Value::String("<api-key>".into())
                } else if ["tnt", "cmp", "bdr", "tgt", "bid", "pol", "key", "dni"].contains(&prefix)
                    && s.len() == prefix.len() + 17
                {
                    Value::String(format!("<{prefix}>"))
                } else {
                    Value::String(s.clone())
                }
            }
            other => other.clone(),
        }
    }
    serde_json::to_string_pretty(&walk(value, None)).unwrap_or_default()
}

/// A finished call record, as call handling stores them: answered by `winner`
/// (bid, bidder, bidder tenant, target, amount) or not, with a short trace.
pub fn call_record(
    id: &str,
    campaign: &host::model::Campaign,
    caller: &str,
    received_at_ms: i64,
    quality: u8,
    winner: Option<host::model::Winner>,
    duration_s: u32,
) -> host::model::CallRecord {
    use host::model::{BidTrace, CallOutcome, CallRecord, DecisionTrace};
    let answered = winner.is_some() && duration_s > 0;
    let bids = winner
        .iter()
        .map(|w| BidTrace {
            bid_id: w.bid_id.clone(),
            bidder_id: w.bidder_id.clone(),
            tenant_id: w.tenant_id.clone(),
            target_id: w.target_id.clone(),
            amount_micros: w.amount_micros,
            min_quality: 0,
            min_duration_s: 90,
            source: "static".to_owned(),
            status: "won".to_owned(),
            reason: None,
        })
        .chain(std::iter::once(BidTrace {
            bid_id: "bid_other".to_owned(),
            bidder_id: "bdr_other".to_owned(),
            tenant_id: "tnt_other".to_owned(),
            target_id: "tgt_other".to_owned(),
            amount_micros: 1,
            min_quality: 100,
            min_duration_s: 90,
            source: "static".to_owned(),
            status: "ineligible".to_owned(),
            reason: Some("below_quality_floor".to_owned()),
        }))
        .collect();
    CallRecord {
        id: id.to_owned(),
        campaign_id: campaign.id.clone(),
        tenant_id: campaign.tenant_id.clone(),
        caller: caller.to_owned(),
        called: campaign.numbers.first().cloned().unwrap_or_default(),
        outcome: if answered {
            CallOutcome::Answered
        } else {
            CallOutcome::NoAnswer
        },
        quality: Some(quality),
        payout_micros: if answered && duration_s >= 90 {
            winner.as_ref().map_or(0, |w| w.amount_micros)
        } else {
            0
        },
        winner,
        received_at_ms,
        routed_at_ms: Some(received_at_ms + 5),
        answered_at_ms: answered.then_some(received_at_ms + 3000),
        ended_at_ms: Some(received_at_ms + 3000 + i64::from(duration_s) * 1000),
        duration_s,
        billable: answered && duration_s >= 90,
        trace: DecisionTrace {
            bids,
            ..DecisionTrace::default()
        },
        inputs: None,
    }
}

/// Asserts that `dir` and everything under it is its user's alone: 0700
/// directories, 0600 files.
pub fn assert_private(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_owned()];
    let mut seen = 0;
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        let mode = meta.permissions().mode() & 0o777;
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{} is {mode:o}", path.display());
        seen += 1;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                stack.push(entry.expect("entry").path());
            }
        }
    }
    assert!(seen > 2, "{} holds the store's files", dir.display());
}

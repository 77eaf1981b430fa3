//! The call lab: Plugboard's call server in this process on loopback, set up
//! through the API, with SIPp as the carrier and as the buyers. Every SIPp
//! keeps a trace of the messages it saw, which tests render and compare.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use host::auction::Ledger;
use host::b2bua::{SwitchConfig, SwitchStats};
use host::model::{CallRecord, Campaign};
use host::names::{Answer, Dns, Families, Names, Resolver};
use host::policy::Limits;
use host::runtime::{CallServices, DatagramLoss, PolicyCpu, SipSockets, TlsSide, serve_calls};
use host::store::CallFilter;
use host::transaction::Timers;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::{TestApi, str_field};

/// The campaign's number.
pub const NUMBER: &str = "+18005550100";
/// The number calls come from.
pub const CALLER: &str = "+14155550123";

/// SIPp, installed by the test command (Debian's `sip-tester`).
pub fn sipp_path() -> PathBuf {
    let path = PathBuf::from("/usr/bin/sipp");
    assert!(
        path.exists(),
        "SIPp is missing: `cargo xtask test` installs it (apt-get install sip-tester)"
    );
    path
}

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data/sipp")
        .join(format!("{name}.xml"))
}

/// `base` with the fields of `over` laid over it.
fn merged(mut base: serde_json::Value, over: &serde_json::Value) -> serde_json::Value {
    if let (Some(base), Some(over)) = (base.as_object_mut(), over.as_object()) {
        base.extend(over.clone());
    }
    base
}

/// A DNS that never answers, for any name.
pub fn never_answers() -> Arc<dyn Dns> {
    struct Silent;
    impl Dns for Silent {
        fn addresses(&self, _name: String) -> Answer<std::net::IpAddr> {
            Box::pin(std::future::pending())
        }
        fn services(&self, _name: String) -> Answer<host::sip::locate::SrvRecord> {
            Box::pin(std::future::pending())
        }
    }
    Arc::new(Silent)
}

/// A UDP port nobody uses now.
pub fn free_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("address").port()
}

/// How a [`CallLab`] is set up; the default is RFC 3261's timers, room for
/// 1,000 calls, the test limits on policies, the system's resolver and the
/// server's default share of CPU per tenant.
pub struct LabSetup {
    pub timers: Timers,
    pub max_calls: usize,
    pub loss: Option<DatagramLoss>,
    /// The DNS the call server locates targets with (none: the system's).
    pub dns: Option<Arc<dyn Dns>>,
    /// How TLS targets are checked (none: no TLS).
    pub tls_client: Option<Arc<rustls::ClientConfig>>,
    /// A TLS listener with this certificate (none: no listener).
    pub tls_listener: Option<Arc<rustls::ServerConfig>>,
    /// A UDP socket on `[::1]` beside the IPv4 listener, for IPv6 targets.
    pub ipv6: bool,
    pub limits: Limits,
    pub tenant_cpu: PolicyCpu,
    pub first_response_timeout: Duration,
}

impl Default for LabSetup {
    fn default() -> Self {
        LabSetup {
            timers: Timers::default(),
            max_calls: 1000,
            loss: None,
            dns: None,
            tls_client: None,
            tls_listener: None,
            ipv6: false,
            limits: TestApi::LIMITS,
            tenant_cpu: PolicyCpu::for_this_machine(host::fair::DEFAULT_TENANT_CPU_PERCENT),
            first_response_timeout: host::b2bua::DEFAULT_FIRST_RESPONSE_TIMEOUT,
        }
    }
}

pub struct CallLab {
    pub api: TestApi,
    pub sip: SocketAddr,
    /// The TLS listener's address, if the lab has one.
    pub sip_tls: Option<SocketAddr>,
    pub marketer_key: String,
    pub bidder_key: String,
    pub bidder_id: String,
    pub campaign_id: String,
    pub ledger: Arc<Ledger>,
    /// Where SIPp writes its traces.
    pub logs: tempfile::TempDir,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<SwitchStats>>,
    _resolver: Option<Resolver>,
}

impl CallLab {
    /// RFC 3261's default timers, room for 1,000 calls.
    pub async fn start() -> Self {
        Self::with(Timers::default(), 1000).await
    }

    pub async fn with(timers: Timers, max_calls: usize) -> Self {
        Self::with_loss(timers, max_calls, None).await
    }

    /// As [`CallLab::with`], the call server dropping datagrams on purpose.
    pub async fn with_loss(timers: Timers, max_calls: usize, loss: Option<DatagramLoss>) -> Self {
        Self::build(LabSetup {
            timers,
            max_calls,
            loss,
            ..LabSetup::default()
        })
        .await
    }

    /// RFC 3261's timers, the call server locating targets with `dns`
    /// instead of the system's.
    pub async fn with_dns(dns: Arc<dyn Dns>) -> Self {
        Self::build(LabSetup {
            dns: Some(dns),
            ..LabSetup::default()
        })
        .await
    }

    pub async fn build(setup: LabSetup) -> Self {
        let LabSetup {
            timers,
            max_calls,
            loss,
            dns,
            tls_client,
            tls_listener,
            ipv6,
            limits,
            tenant_cpu,
            first_response_timeout,
        } = setup;
        let mut api = TestApi::with_limits(limits).await;
        let families = Families { ipv4: true, ipv6 };
        let dns = dns.or_else(|| ipv6.then(|| host::names::dns_for(&[])));
        let (names, resolver) = match dns {
            Some(dns) => {
                let (names, resolver) = Names::start(dns, families);
                api.locating_with(names.clone());
                (names, Some(resolver))
            }
            None => (api.state.names.clone(), None),
        };
        let (udp, tcp) = host::runtime::bind_udp_and_tcp(([127, 0, 0, 1], 0).into())
            .await
            .expect("bind UDP and TCP");
        let sip = udp.local_addr().expect("address");
        let udp_other = match ipv6 {
            true => Some(
                tokio::net::UdpSocket::bind("[::1]:0")
                    .await
                    .expect("bind [::1]"),
            ),
            false => None,
        };
        let local_other_family = udp_other
            .as_ref()
            .map(|socket| socket.local_addr().expect("address").to_string());
        let tls_listener = match tls_listener {
            Some(config) => Some((
                tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind TLS"),
                config,
            )),
            None => None,
        };
        let sip_tls = tls_listener
            .as_ref()
            .map(|(listener, _)| listener.local_addr().expect("TLS address"));
        let services = Arc::new(CallServices {
            store: api.state.store.clone(),
            names,
            policies: api.state.policies.clone(),
            metrics: api.state.metrics.clone(),
            ledger: api.state.ledger.clone(),
            cpu: Arc::new(tenant_cpu),
            arrivals: Default::default(),
        });
        let ledger = api.state.ledger.clone();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(serve_calls(
            SipSockets {
                udp,
                udp_other,
                tcp: Some(tcp),
                tls: TlsSide {
                    client: tls_client,
                    listener: tls_listener,
                },
                tcp_idle: Duration::from_secs(60),
                loss,
            },
            services,
            SwitchConfig {
                local: sip.to_string(),
                local_tls: sip_tls.map(|a| a.to_string()),
                local_other_family,
                timers,
                max_calls,
                retry_after_s: 5,
                quality_headers: true,
                trusted_sources: Vec::new(),
                invite_rate: host::b2bua::admission::InviteRate::per_second(
                    host::config::DEFAULT_INVITE_RATE,
                ),
                first_response_timeout,
            },
            async move {
                let _ = stopped.changed().await;
            },
        ));
        let (_, marketer_key) = api.tenant("acme", "marketer").await;
        let (_, bidder_key) = api.tenant("buyer1", "bidder").await;
        let campaign = api
            .campaign(&marketer_key, json!({"name": "solar", "numbers": [NUMBER]}))
            .await;
        let (status, bidder) = api
            .call(
                "POST",
                "/v1/bidders",
                Some(&bidder_key),
                Some(json!({"name": "Buyer One"})),
            )
            .await;
        assert_eq!(status, 201, "{bidder}");
        CallLab {
            sip,
            sip_tls,
            marketer_key,
            bidder_key,
            bidder_id: str_field(&bidder, "id"),
            campaign_id: str_field(&campaign, "id"),
            ledger,
            logs: tempfile::tempdir().expect("temp dir"),
            stop,
            server,
            _resolver: resolver,
            api,
        }
    }

    /// A target of the lab's bidder ringing `port` on loopback.
    pub async fn target(&self, port: u16, ring_timeout_s: u32, max_concurrent: u32) -> String {
        self.target_with(
            port,
            json!({"ring_timeout_s": ring_timeout_s, "max_concurrent": max_concurrent}),
        )
        .await
    }

    /// A target of the lab's bidder ringing `port` on loopback, with
    /// `fields` (`miss_limit`, …).
    pub async fn target_with(&self, port: u16, fields: serde_json::Value) -> String {
        self.target_of(&self.bidder_id, port, fields).await
    }

    /// Another bidder of the lab's buyer, with `fields` (`rtb_url`, …).
    pub async fn new_bidder(&self, name: &str, fields: serde_json::Value) -> String {
        self.new_bidder_as(&self.bidder_key, name, fields).await
    }

    /// A bidder of `key`'s tenant, with `fields`.
    pub async fn new_bidder_as(&self, key: &str, name: &str, fields: serde_json::Value) -> String {
        let body = merged(json!({"name": name}), &fields);
        self.create(key, "/v1/bidders", body).await
    }

    /// A target of `bidder_id` (the lab buyer's) ringing `port` on loopback.
    pub async fn target_of(&self, bidder_id: &str, port: u16, fields: serde_json::Value) -> String {
        self.target_as(&self.bidder_key, bidder_id, port, fields)
            .await
    }

    /// A target of `bidder_id`, a bidder of `key`'s tenant, ringing `port`.
    pub async fn target_as(
        &self,
        key: &str,
        bidder_id: &str,
        port: u16,
        fields: serde_json::Value,
    ) -> String {
        let body = merged(
            json!({"uri": format!("sip:sales@127.0.0.1:{port}")}),
            &fields,
        );
        self.create(key, &format!("/v1/bidders/{bidder_id}/targets"), body)
            .await
    }

    /// POSTs `body` to `path` as `key`, asserting `201`; the new object's id.
    async fn create(&self, key: &str, path: &str, body: serde_json::Value) -> String {
        let (status, created) = self.api.call("POST", path, Some(key), Some(body)).await;
        assert_eq!(status, 201, "{created}");
        str_field(&created, "id")
    }

    /// A campaign made straight in the store as a copy of the lab's with
    /// `id`, its name, and `number`, then `change`d: its id can steer the
    /// hostile test scorer (which misbehaves by campaign id).
    pub fn campaign_in_store(&self, id: &str, number: &str, change: impl FnOnce(&mut Campaign)) {
        let store = &self.api.state.store;
        let mut campaign = store
            .campaign(&self.campaign_id)
            .expect("read")
            .expect("the lab's campaign");
        campaign.id = id.to_owned();
        campaign.name = id.to_owned();
        campaign.numbers = vec![number.to_owned()];
        change(&mut campaign);
        store.put_campaign(&campaign).expect("campaign");
    }

    /// A buyer running `scenario_name` for `calls` calls behind a target of
    /// the lab's bidder (20 s ring timeout, 10 calls at once) with a 5 USD
    /// bid on the lab's campaign: the buyer, and the target's id.
    pub async fn bidding_buyer(&self, scenario_name: &str, calls: u32) -> (Sipp, String) {
        let buyer = self.buyer(scenario_name, calls).await;
        let target = self.target(buyer.port, 20, 10).await;
        self.bid(&target, 5_000_000, 0).await;
        (buyer, target)
    }

    /// A static bid on the lab's campaign (no minimum duration).
    pub async fn bid(&self, target_id: &str, amount_micros: u64, min_quality: u8) -> String {
        self.bid_on(&self.campaign_id, target_id, amount_micros, min_quality, 0)
            .await
    }

    /// A static bid on any campaign.
    pub async fn bid_on(
        &self,
        campaign_id: &str,
        target_id: &str,
        amount_micros: u64,
        min_quality: u8,
        min_duration_s: u32,
    ) -> String {
        self.bid_with(json!({
            "campaign_id": campaign_id,
            "target_id": target_id,
            "amount_micros": amount_micros,
            "min_quality": min_quality,
            "min_duration_s": min_duration_s,
        }))
        .await
    }

    /// A static bid with `fields` (`target_id` and `amount_micros` at least)
    /// over the defaults: the lab's campaign, no quality floor, no minimum
    /// duration.
    pub async fn bid_with(&self, fields: serde_json::Value) -> String {
        let defaults = json!({
            "campaign_id": self.campaign_id,
            "min_quality": 0,
            "min_duration_s": 0,
        });
        self.create(&self.bidder_key, "/v1/bids", merged(defaults, &fields))
            .await
    }

    /// Uploads `component` as a `world` policy of `key`'s tenant and makes
    /// it active; its id and version.
    pub async fn deploy_new(
        &self,
        key: &str,
        world: &str,
        component: Vec<u8>,
        failure_mode: &str,
    ) -> (String, String) {
        let uploaded = self.api.upload(key, world, component).await;
        let (id, version) = (str_field(&uploaded, "id"), str_field(&uploaded, "version"));
        self.deploy(key, &id, &version, failure_mode).await;
        (id, version)
    }

    /// Makes `version` the active one of `policy_id`, alone.
    pub async fn deploy(&self, key: &str, policy_id: &str, version: &str, failure_mode: &str) {
        let (status, body) = self
            .api
            .call(
                "PUT",
                &format!("/v1/policies/{policy_id}/deployment"),
                Some(key),
                Some(json!({"active": version, "canary": null, "shadow": null, "failure_mode": failure_mode})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// A bidder of `key`'s tenant whose strategy is `component`, uploaded
    /// and made active: the policy's id and the bidder's.
    pub async fn module_bidder(
        &self,
        key: &str,
        name: &str,
        component: Vec<u8>,
    ) -> (String, String) {
        let (policy, _) = self.deploy_new(key, "bidder", component, "fallback").await;
        let bidder = self
            .new_bidder_as(key, name, json!({"strategy_policy_id": policy}))
            .await;
        (policy, bidder)
    }

    /// `count` bidders of the lab's bidder tenant whose strategy is the
    /// example bidder module, each with a target at `port` taking any
    /// number of calls at once (the benchmarks' market).
    pub async fn example_module_bidders(&self, count: usize, port: u16) {
        let (module, _) = self
            .deploy_new(
                &self.bidder_key,
                "bidder",
                crate::example_policy("state-hour-bidder"),
                "skip",
            )
            .await;
        for i in 0..count {
            let bidder = self
                .new_bidder(
                    &format!("Module {i}"),
                    json!({"strategy_policy_id": module}),
                )
                .await;
            self.target_of(&bidder, port, json!({"max_concurrent": 100_000}))
                .await;
        }
    }

    /// Gives the lab's campaign a pool of `pooled` alone and hands it to a
    /// visitor session with `attributes`: a call to `pooled` is attributed.
    pub async fn visitor_on(&self, pooled: &str, attributes: serde_json::Value) {
        let (status, body) = self
            .api
            .call(
                "PUT",
                &format!("/v1/campaigns/{}/pool", self.campaign_id),
                Some(&self.marketer_key),
                Some(json!({"numbers": [pooled]})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = self
            .api
            .call(
                "POST",
                &format!("/v1/campaigns/{}/dni-sessions", self.campaign_id),
                Some(&self.marketer_key),
                Some(json!({"attributes": attributes})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["number"], pooled, "{body}");
    }

    /// Changes the lab's campaign (as its marketer).
    pub async fn update_campaign(&self, patch: serde_json::Value) {
        let path = format!("/v1/campaigns/{}", self.campaign_id);
        let (status, body) = self
            .api
            .call("PATCH", &path, Some(&self.marketer_key), Some(patch))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Every stored call record, oldest first.
    pub fn records(&self) -> Vec<CallRecord> {
        self.api
            .state
            .store
            .calls(&CallFilter::default(), |_| true, None, 10_000)
            .expect("calls")
            .calls
    }

    /// Waits (up to 40 s) until `count` records are stored.
    pub async fn wait_for_records(&self, count: usize) -> Vec<CallRecord> {
        for _ in 0..400 {
            let records = self.records();
            if records.len() >= count {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "expected {count} call records, have {}",
            self.records().len()
        );
    }

    /// The record of `GET /v1/calls/{id}` as the marketer reads it.
    pub async fn record_through_api(&self, id: &str) -> serde_json::Value {
        let (status, body) = self
            .api
            .call(
                "GET",
                &format!("/v1/calls/{id}"),
                Some(&self.marketer_key),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Tells the call server to stop (calls in progress get BYE), without
    /// waiting for it.
    pub fn stop_signal(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops the call server; what it counted.
    pub async fn stop(self) -> SwitchStats {
        let _ = self.stop.send(true);
        self.server.await.expect("task").expect("served")
    }

    /// A SIPp running `scenario` as a buyer on a free port, for `calls` calls.
    pub async fn buyer(&self, scenario_name: &str, calls: u32) -> Sipp {
        self.buyer_with(scenario_name, calls, &[]).await
    }

    /// As [`CallLab::buyer`], with more SIPp arguments (`-key name value`…).
    pub async fn buyer_with(&self, scenario_name: &str, calls: u32, extra: &[&str]) -> Sipp {
        self.buyer_on("127.0.0.1", scenario_name, calls, extra)
            .await
    }

    /// As [`CallLab::buyer_with`], the buyer listening on `ip` (`::1`).
    pub async fn buyer_on(
        &self,
        ip: &str,
        scenario_name: &str,
        calls: u32,
        extra: &[&str],
    ) -> Sipp {
        let port = free_port();
        let log = self.logs.path().join(format!("buyer-{port}.log"));
        let errors = self.logs.path().join(format!("buyer-{port}.err"));
        let error_file = std::fs::File::create(&errors).expect("error log");
        let child = Command::new(sipp_path())
            .current_dir(self.logs.path())
            .arg("-sf")
            .arg(scenario(scenario_name))
            .args(["-i", ip, "-p", &port.to_string()])
            .args(["-m", &calls.to_string()])
            .args([
                "-timeout",
                "60s",
                "-timeout_error",
                "-nostdin",
                "-trace_msg",
            ])
            .args(extra)
            .arg("-message_file")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(error_file)
            .kill_on_drop(true)
            .spawn()
            .expect("SIPp starts");
        // Ready once it holds its port (TCP's with `-t t1`).
        let over_tcp = extra.windows(2).any(|w| w == ["-t", "t1"]);
        for _ in 0..100 {
            let held = if over_tcp {
                std::net::TcpListener::bind((ip, port)).is_err()
            } else {
                std::net::UdpSocket::bind((ip, port)).is_err()
            };
            if held {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Sipp {
            child,
            port,
            log,
            errors,
        }
    }

    /// SIPp as the carrier: `calls` calls of `scenario` to the campaign's
    /// number (`extra` for rate, hold time…); waits for it to finish.
    pub async fn carrier(&self, scenario_name: &str, calls: u32, extra: &[&str]) -> Carrier {
        self.carrier_to(NUMBER, scenario_name, calls, extra).await
    }

    /// As [`CallLab::carrier`], calling `number`.
    pub async fn carrier_to(
        &self,
        number: &str,
        scenario_name: &str,
        calls: u32,
        extra: &[&str],
    ) -> Carrier {
        self.carrier_from(CALLER, number, scenario_name, calls, extra)
            .await
    }

    /// As [`CallLab::carrier_to`], from `caller`.
    pub async fn carrier_from(
        &self,
        caller: &str,
        number: &str,
        scenario_name: &str,
        calls: u32,
        extra: &[&str],
    ) -> Carrier {
        let port = free_port();
        let log = self.logs.path().join(format!("carrier-{port}.log"));
        let output = Command::new(sipp_path())
            .current_dir(self.logs.path())
            .arg("-sf")
            .arg(scenario(scenario_name))
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-s", number, "-key", "caller", caller])
            .args(["-m", &calls.to_string()])
            .args([
                "-timeout",
                "60s",
                "-timeout_error",
                "-nostdin",
                "-trace_msg",
            ])
            .arg("-message_file")
            .arg(&log)
            .args(extra)
            .arg(self.sip.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .expect("SIPp runs");
        Carrier {
            status: output.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            messages: messages(&log),
        }
    }
}

/// What the auction did with `bid_id` in a call's record: its status and
/// reason; a panic if the bid is not in the trace.
pub fn bid_fate<'a>(record: &'a CallRecord, bid_id: &str) -> (&'a str, Option<&'a str>) {
    let bid = record
        .trace
        .bids
        .iter()
        .find(|b| b.bid_id == bid_id)
        .unwrap_or_else(|| panic!("{bid_id} is not in the trace of {}", record.id));
    (bid.status.as_str(), bid.reason.as_deref())
}

/// A SIPp buyer.
pub struct Sipp {
    child: Child,
    pub port: u16,
    log: PathBuf,
    errors: PathBuf,
}

impl Sipp {
    /// Waits (up to 30 s) for the buyer to finish its calls; its exit code
    /// (0: every call went through the scenario) and what it saw.
    pub async fn finish(mut self) -> Carrier {
        let status = match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(status)) => status.code().unwrap_or(-1),
            _ => {
                let _ = self.child.kill().await;
                -2
            }
        };
        Carrier {
            status,
            stderr: std::fs::read_to_string(&self.errors).unwrap_or_default(),
            messages: messages(&self.log),
        }
    }

    /// Stops the buyer now; what it saw.
    pub async fn kill(mut self) -> Vec<Seen> {
        let _ = self.child.kill().await;
        messages(&self.log)
    }
}

/// What a SIPp run ended with.
pub struct Carrier {
    /// SIPp's exit code: 0 when every call completed its scenario.
    pub status: i32,
    pub stderr: String,
    pub messages: Vec<Seen>,
}

impl Carrier {
    /// The first message received whose first line starts with `start`.
    pub fn first_received(&self, start: &str) -> Option<&Seen> {
        self.messages
            .iter()
            .find(|m| !m.sent && m.first_line().starts_with(start))
    }

    /// For each call SIPp placed, from its INVITE to its first final
    /// answer, in order of the INVITEs.
    pub fn setup_times(&self) -> Vec<Duration> {
        let call_id = |m: &Seen| m.header("Call-ID").map(str::to_owned);
        let mut times = Vec::new();
        let mut placed = std::collections::HashSet::new();
        for invite in self
            .messages
            .iter()
            .filter(|m| m.sent && m.is_request("INVITE"))
        {
            let id = call_id(invite);
            if !placed.insert(id.clone()) {
                continue; // a retransmission
            }
            let answer = self.messages.iter().find(|m| {
                !m.sent
                    && call_id(m) == id
                    && m.header("CSeq").is_some_and(|c| c.ends_with("INVITE"))
                    && m.first_line()
                        .split_whitespace()
                        .nth(1)
                        .is_some_and(|code| code >= "200")
            });
            let (Some(sent), Some(answered)) = (invite.at, answer.and_then(|a| a.at)) else {
                continue;
            };
            let span = answered.duration_since(sent);
            times.push(Duration::try_from(span).unwrap_or_default());
        }
        times
    }

    /// One line per message: `-> ` sent, `<- ` received; requests by method,
    /// responses by status line.
    pub fn flow(&self) -> String {
        flow(&self.messages)
    }

    /// Asserts that every call went through the scenario, showing what
    /// SIPp saw if not.
    pub fn assert_ok(&self) {
        assert_eq!(
            self.status,
            0,
            "SIPp failed; it saw:\n{}\n{}\nin full:\n{}",
            self.flow(),
            self.stderr,
            self.messages
                .iter()
                .map(|m| m.text.as_str())
                .collect::<Vec<_>>()
                .join("\n\n")
        );
    }
}

/// One message a SIPp instance sent or received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub sent: bool,
    pub text: String,
    /// When SIPp logged it (its local clock).
    pub at: Option<jiff::civil::DateTime>,
}

impl Seen {
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.text.lines().find_map(|line| {
            line.to_ascii_lowercase()
                .starts_with(&prefix)
                .then(|| line[prefix.len()..].trim())
        })
    }

    pub fn is_request(&self, method: &str) -> bool {
        self.first_line().starts_with(&format!("{method} "))
    }
}

/// Renders messages as `-> INVITE` / `<- SIP/2.0 200 OK` lines.
pub fn flow(messages: &[Seen]) -> String {
    let mut out = String::new();
    for message in messages {
        let line = message.first_line();
        let shown = if line.starts_with("SIP/2.0") {
            line.to_owned()
        } else {
            line.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        out.push_str(if message.sent { "-> " } else { "<- " });
        out.push_str(&shown);
        out.push('\n');
    }
    out
}

/// SIPp's `-trace_msg` file, message by message.
fn messages(log: &std::path::Path) -> Vec<Seen> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut out = Vec::new();
    for block in text.split("----------------------------------------------- ") {
        let mut lines = block.lines();
        let at = lines.next().and_then(|stamp| stamp.trim().parse().ok());
        let Some(kind) = lines.next() else { continue };
        let sent = kind.contains("message sent");
        if !sent && !kind.contains("message received") {
            continue;
        }
        let body: Vec<&str> = lines.skip_while(|l| l.trim().is_empty()).collect();
        let message = body.join("\n").trim_end().to_owned();
        if message.is_empty() {
            continue;
        }
        out.push(Seen {
            sent,
            text: message,
            at,
        });
    }
    out
}

/// Sends one request (its `LOCAL` replaced by our address, its line ends
/// made CRLF) over UDP to `to`; the first final (non-1xx) answer.
pub async fn exchange_final(to: SocketAddr, request: &str) -> String {
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let local = client.local_addr().expect("address");
    let request = request
        .replace("LOCAL", &local.to_string())
        .replace('\n', "\r\n");
    client.send_to(request.as_bytes(), to).await.expect("send");
    let mut buffer = vec![0u8; 65536];
    loop {
        let (length, _) =
            tokio::time::timeout(Duration::from_secs(10), client.recv_from(&mut buffer))
                .await
                .expect("an answer")
                .expect("received");
        let text = String::from_utf8_lossy(&buffer[..length]).replace("\r\n", "\n");
        if !text.starts_with("SIP/2.0 1") {
            return text;
        }
    }
}

/// How a test's loopback loses datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lossy {
    /// `tc netem` on the loopback of a network namespace of the calling thread.
    Netem,
    /// The kernel has no `netem` (or we may not make a namespace): the call
    /// server drops the same share of datagrams itself, both ways.
    InProcess,
}

/// Moves the calling thread (and the threads and processes it starts) into
/// a new network namespace whose loopback drops `percent` of packets. Falls
/// back to [`Lossy::InProcess`] where that cannot be done.
pub fn lossy_loopback(percent: u8) -> Lossy {
    // SAFETY: unshare(2) with CLONE_NEWNET only changes this thread's
    // network namespace; it touches no memory of ours.
    #[allow(unsafe_code)]
    let unshared = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if unshared != 0 {
        return Lossy::InProcess;
    }
    let run = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let loss = format!("{percent}%");
    if run("ip", &["link", "set", "lo", "up"])
        && run(
            "tc",
            &["qdisc", "add", "dev", "lo", "root", "netem", "loss", &loss],
        )
    {
        Lossy::Netem
    } else {
        // The namespace's loopback may be down: bring it up for the fallback.
        run("ip", &["link", "set", "lo", "up"]);
        Lossy::InProcess
    }
}

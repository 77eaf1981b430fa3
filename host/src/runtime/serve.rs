//! `plugboard serve`: open the store, restore policy deployments, load the
//! example policies on first start, serve the HTTP API until SIGTERM/SIGINT,
//! then flush the store.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api::{self, ApiState};
use crate::auction::Ledger;
use crate::b2bua::SwitchConfig;
use crate::clock;
use crate::config::Config;
use crate::lifecycle::{DeploymentSpec, PolicyLifecycle};
use crate::metrics::Metrics;
use crate::model::{Bid, CallOutcome, FailureMode, Policy, Role, Tenant, World};
use crate::policy::{ArtifactCache, EngineError, PolicyEngine, PolicyRegistry};
use crate::store::{CallFilter, Store, StoreError};
use crate::transaction::Timers;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the store in {dir}: {cause} (is another plugboard using it?)")]
    Store { dir: String, cause: StoreError },
    #[error(transparent)]
    StoreOp(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot listen on {addr}: {cause}")]
    Listen {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("server failed: {0}")]
    Server(std::io::Error),
    #[error(
        "already bootstrapped: an operator tenant exists; create more keys with POST /v1/api-keys"
    )]
    AlreadyBootstrapped,
    #[error("cannot create the operator: {0}")]
    Bootstrap(String),
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
}

/// A running host's parts, built from a config.
pub struct Host {
    pub state: ApiState,
}

/// Files this process creates from now on are its user's alone (0600, and
/// 0700 for directories): the data directory holds key hashes, bids and call
/// records. The binary calls it before it serves or bootstraps.
pub fn keep_new_files_private() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// The data directory, made (or narrowed) to 0700.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn open_store(dir: &Path) -> Result<Arc<Store>, ServeError> {
    private_dir(dir).map_err(|e| ServeError::Store {
        dir: dir.display().to_string(),
        cause: StoreError::Storage(e.to_string()),
    })?;
    Store::open(&dir.join("store"))
        .map(Arc::new)
        .map_err(|cause| ServeError::Store {
            dir: dir.display().to_string(),
            cause,
        })
}

impl Host {
    /// Opens the store and restores every policy deployment.
    pub async fn start(config: &Config) -> Result<Self, ServeError> {
        let store = open_store(&config.data_dir)?;
        let engine = PolicyEngine::new(config.policy_limits)?;
        let artifacts = ArtifactCache::new(config.data_dir.join("artifacts"));
        let policies = Arc::new(PolicyLifecycle::new(
            store.clone(),
            engine,
            artifacts,
            Arc::new(PolicyRegistry::new()),
            config.policy_compiler.clone(),
        ));
        let restored = policies.restore().await?;
        tracing::info!(restored, "policy deployments restored");
        let ledger = Arc::new(Ledger::new());
        let restored = restore_caps(&store, &ledger)?;
        tracing::info!(calls = restored, "cap usage restored from call records");
        let families = crate::names::Families {
            ipv4: config.sip_listen.iter().any(SocketAddr::is_ipv4),
            ipv6: config.sip_listen.iter().any(SocketAddr::is_ipv6),
        };
        let (names, resolver) =
            crate::names::Names::start(crate::names::dns_for(&config.dns_servers), families);
        let targets = store.targets()?;
        let campaigns = store.campaigns()?;
        names.want(
            targets.iter().map(|t| t.uri.as_str()).chain(
                campaigns
                    .iter()
                    .filter_map(|c| c.fallback_target.as_deref()),
            ),
        );
        let state = ApiState {
            store,
            policies,
            metrics: Arc::new(Metrics::new()),
            dni_pools: Arc::default(),
            ledger,
            names,
            resolver: Arc::new(resolver),
        };
        if let Some(dir) = &config.example_policies {
            load_examples(&state, dir).await?;
        }
        Ok(Host { state })
    }
}

/// Counts into `ledger` the answered calls of the last month (the longest
/// cap period) of bids with caps, so caps hold across a restart; the calls.
fn restore_caps(store: &Store, ledger: &Ledger) -> Result<usize, ServeError> {
    let capped: HashMap<String, Bid> = store
        .bids()?
        .into_iter()
        .filter(|bid| crate::auction::ledger::caps_of(bid).next().is_some())
        .map(|bid| (bid.id.clone(), bid))
        .collect();
    if capped.is_empty() {
        return Ok(0);
    }
    let filter = CallFilter {
        outcome: Some(CallOutcome::Answered),
        since_ms: Some((crate::clock::unix_now() - 32 * 86_400) * 1000),
        ..CallFilter::default()
    };
    let mut restored = 0;
    for call in store.calls(&filter, |_| true, None, usize::MAX)?.calls {
        let Some(bid) = call.winner.as_ref().and_then(|w| capped.get(&w.bid_id)) else {
            continue;
        };
        // Counted when its target rang: the answered leg's start.
        let rang_at_ms = call
            .trace
            .legs
            .iter()
            .find(|leg| leg.result == "answered")
            .map_or(call.received_at_ms, |leg| leg.started_at_ms);
        ledger.restore(bid, rang_at_ms.div_euclid(1000), call.billable);
        restored += 1;
    }
    Ok(restored)
}

const SYSTEM_TENANT: &str = "tnt_plugboard";

/// Loads `<dir>/*-{scorer,bidder,selector}.wasm` once, as shared, active
/// policies owned by the system tenant, so a newcomer can use them at once.
async fn load_examples(state: &ApiState, dir: &Path) -> Result<(), ServeError> {
    if state.store.tenant(SYSTEM_TENANT)?.is_some() {
        return Ok(());
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    let system = Tenant {
        id: SYSTEM_TENANT.to_owned(),
        name: "plugboard".to_owned(),
        role: Role::Operator,
        created_at: clock::unix_now(),
    };
    for path in files {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        let Some(world) = World::ALL
            .into_iter()
            .find(|w| name.ends_with(&format!("-{w}")))
        else {
            continue;
        };
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let policy = Policy {
            id: format!("pol_{name}"),
            tenant_id: system.id.clone(),
            name: name.clone(),
            world,
            shared: true,
            created_at: clock::unix_now(),
        };
        let loaded = async {
            let version = state.policies.add_version(&policy, bytes).await?;
            let spec = DeploymentSpec {
                active: Some(version.version),
                canary: None,
                shadow: None,
                failure_mode: FailureMode::Fallback,
                demotion: Default::default(),
                replay_gate: None,
            };
            state.policies.deploy(&policy, spec).await
        };
        match loaded.await {
            Ok(_) => tracing::info!(policy = %policy.id, "example policy loaded"),
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "example policy not loaded")
            }
        }
    }
    // Marks the examples as loaded: a tenant without keys, owner of the examples.
    state.store.create_tenant(
        &system,
        &crate::model::ApiKey {
            id: "key_none".to_owned(),
            tenant_id: system.id.clone(),
            hash: "none".to_owned(),
            prefix: String::new(),
            created_at: system.created_at,
        },
    )?;
    Ok(())
}

/// Serves until `shutdown` resolves, then flushes the store.
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    super::budget::raise_open_file_limit();
    let host = Host::start(&config).await?;
    let (stop_sip, sip_stopped) = tokio::sync::watch::channel(false);
    let mut sip_threads = Vec::new();
    let services = Arc::new(super::CallServices {
        names: host.state.names.clone(),
        store: host.state.store.clone(),
        policies: host.state.policies.clone(),
        metrics: host.state.metrics.clone(),
        ledger: host.state.ledger.clone(),
        cpu: Arc::new(super::PolicyCpu::for_this_machine(
            config.tenant_policy_cpu_percent,
        )),
        arrivals: Default::default(),
    });
    let tls_client = super::tls::client_config(config.sip_tls.authorities.as_deref())?;
    // The TLS listener belongs to the first SIP loop.
    let mut tls_listener = match (
        &config.sip_tls.listen,
        &config.sip_tls.certificate,
        &config.sip_tls.key,
    ) {
        (Some(address), Some(certificate), Some(key)) => {
            let server = super::tls::server_config(certificate, key)?;
            let listen = |cause| ServeError::Listen {
                addr: *address,
                cause,
            };
            let listener = std::net::TcpListener::bind(address).map_err(listen)?;
            listener.set_nonblocking(true).map_err(listen)?;
            Some((listener, server))
        }
        _ => None,
    };
    for address in &config.sip_listen {
        let sockets = bind_sip(*address).await?;
        let udp = sockets.udp.local_addr().map_err(ServeError::Server)?;
        tracing::info!("SIP listening on udp:{udp} and tcp:{udp}");
        // Targets of the other address family, where the node listens on
        // one too, go out (and answer) through a socket of that family.
        let udp_other = match config
            .sip_listen
            .iter()
            .find(|other| other.is_ipv6() != address.is_ipv6())
        {
            Some(other) => {
                let at = SocketAddr::new(other.ip(), 0);
                let socket = std::net::UdpSocket::bind(at)
                    .map_err(|cause| ServeError::Listen { addr: at, cause })?;
                socket.set_nonblocking(true).map_err(ServeError::Server)?;
                Some(socket)
            }
            None => None,
        };
        let local_other_family = match &udp_other {
            Some(socket) => Some(super::advertised(
                socket.local_addr().map_err(ServeError::Server)?,
                None,
            )),
            None => None,
        };
        let tls_std = tls_listener.take();
        let local_tls = match &tls_std {
            Some((listener, _)) => {
                let bound = listener.local_addr().map_err(ServeError::Server)?;
                tracing::info!("SIP listening on tls:{bound}");
                Some(advertised_tls(bound, config.sip_advertise.as_deref()))
            }
            None => None,
        };
        let switch = SwitchConfig {
            local: super::advertised(udp, config.sip_advertise.as_deref()),
            local_tls,
            local_other_family,
            timers: Timers::default(),
            max_calls: config.max_calls,
            retry_after_s: 5,
            quality_headers: config.sip_quality_headers,
            trusted_sources: config.sip_trusted_sources.clone(),
            invite_rate: crate::b2bua::admission::InviteRate::per_second(config.sip_invite_rate),
            first_response_timeout: config.sip_first_response,
        };
        let mut stopped = sip_stopped.clone();
        let services = services.clone();
        let udp = sockets.udp.into_std().map_err(ServeError::Server)?;
        let tcp = match sockets.tcp {
            Some(listener) => Some(listener.into_std().map_err(ServeError::Server)?),
            None => None,
        };
        let tcp_idle = sockets.tcp_idle;
        let tls_client = tls_client.clone();
        // Each SIP loop has a thread and a single-threaded runtime of its
        // own: its sockets wake it directly, with no work stealing between
        // it and the API's tasks (docs/benchmarks.md).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ServeError::Server)?;
        let thread = std::thread::Builder::new()
            .name(format!(
                "sip-{udp_address}",
                udp_address = udp.local_addr().map_err(ServeError::Server)?
            ))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tls_std {
                        Some((listener, server)) => {
                            Some((TcpListener::from_std(listener)?, server))
                        }
                        None => None,
                    };
                    let sockets = super::SipSockets {
                        udp: tokio::net::UdpSocket::from_std(udp)?,
                        udp_other: udp_other.map(tokio::net::UdpSocket::from_std).transpose()?,
                        tcp: tcp.map(TcpListener::from_std).transpose()?,
                        tls: super::TlsSide {
                            client: Some(tls_client),
                            listener,
                        },
                        tcp_idle,
                        loss: None,
                    };
                    super::serve_calls(sockets, services, switch, async move {
                        let _ = stopped.changed().await;
                    })
                    .await
                })
            })
            .map_err(ServeError::Server)?;
        sip_threads.push(thread);
    }
    let listener = TcpListener::bind(config.http_listen)
        .await
        .map_err(|cause| ServeError::Listen {
            addr: config.http_listen,
            cause,
        })?;
    let local = listener.local_addr().map_err(ServeError::Server)?;
    tracing::info!("HTTP API listening on http://{local}");
    let store = host.state.store.clone();
    super::serve_http(listener, api::router(host.state), shutdown)
        .await
        .map_err(ServeError::Server)?;
    let _ = stop_sip.send(true);
    for thread in sip_threads {
        let finished = tokio::task::spawn_blocking(move || thread.join()).await;
        if let Ok(Ok(Err(error))) = finished {
            tracing::warn!(%error, "SIP loop ended with an error");
        }
    }
    store.flush()?;
    tracing::info!("stopped; store flushed");
    Ok(())
}

/// UDP and TCP on one address; with port 0, both on the port UDP was given.
async fn bind_sip(address: SocketAddr) -> Result<super::SipSockets, ServeError> {
    let (udp, tcp) = bind_udp_and_tcp(address)
        .await
        .map_err(|cause| ServeError::Listen {
            addr: address,
            cause,
        })?;
    Ok(super::SipSockets {
        udp,
        udp_other: None,
        tcp: Some(tcp),
        tls: super::TlsSide::default(),
        tcp_idle: std::time::Duration::from_secs(120),
        loss: None,
    })
}

/// The TLS listener's `host:port` for Contact: the advertised host (if one
/// is configured) at the listener's port, else as [`super::advertised`].
fn advertised_tls(bound: SocketAddr, advertise: Option<&str>) -> String {
    match advertise.and_then(|a| a.rsplit_once(':')) {
        Some((host, _)) => format!("{host}:{}", bound.port()),
        None => super::advertised(bound, None),
    }
}

/// `plugboard admin bootstrap`: the first operator and its key.
pub fn bootstrap(data_dir: &Path) -> Result<String, ServeError> {
    let store = open_store(data_dir)?;
    let has_operator = store
        .tenants()?
        .iter()
        .any(|t| t.role == Role::Operator && t.id != SYSTEM_TENANT);
    if has_operator {
        return Err(ServeError::AlreadyBootstrapped);
    }
    let (_, key) = api::create_tenant_with_key(&store, "operator", Role::Operator)
        .map_err(|e| ServeError::Bootstrap(e.message))?;
    store.flush()?;
    Ok(key)
}

/// Binds UDP and TCP on one port, as SIP expects. With port 0 the OS picks
/// a port free for UDP, which may be busy for TCP (another socket's
/// ephemeral port): then another port is tried, a bounded number of times.
pub async fn bind_udp_and_tcp(
    address: SocketAddr,
) -> std::io::Result<(tokio::net::UdpSocket, TcpListener)> {
    const ATTEMPTS: usize = 32;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp = tokio::net::UdpSocket::bind(address).await?;
        let bound = udp.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error)
                if address.port() == 0
                    && error.kind() == std::io::ErrorKind::AddrInUse
                    && attempt < ATTEMPTS => {}
            Err(error) => return Err(error),
        }
    }
}

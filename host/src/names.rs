//! Host names of targets and fallbacks, located off the call path (RFC 3263:
//! SRV, then A/AAAA, by the plan `sip::locate` draws). A call reads only the
//! cache: a name that is slow or never answers fails its own target (the leg
//! is `unresolvable`), never anyone else's call. Names are located when a
//! target or fallback is saved (the API waits, at most [`LOOKUP_TIMEOUT`]),
//! at start for every stored one, on a miss in the background, and again
//! every [`REFRESH`].

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::sip::SipUri;
use crate::sip::locate::{self, Location, Plan, SrvRecord};

/// How long locating one URI may take before it counts as unresolved.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// How often every known name is looked up again.
pub const REFRESH: Duration = Duration::from_secs(60);
/// Names kept at most; past it, new names are not cached (and fail).
const MAX_NAMES: usize = 10_000;
/// Lookups under way at once.
const MAX_LOOKUPS: usize = 16;

/// One DNS question's answer.
pub type Answer<T> = Pin<Box<dyn Future<Output = Vec<T>> + Send>>;

/// The DNS questions RFC 3263 asks; empty answers for names that do not
/// exist, do not answer, or have no such records.
pub trait Dns: Send + Sync + 'static {
    /// A and AAAA records of `name`.
    fn addresses(&self, name: String) -> Answer<IpAddr>;
    /// SRV records of `name` (`_sip._udp.example.com`).
    fn services(&self, name: String) -> Answer<SrvRecord>;
}

/// A DNS client of its own (hickory): the system's name servers from
/// `/etc/resolv.conf` and `/etc/hosts`, or the ones configured.
pub struct HickoryDns(TokioResolver);

impl HickoryDns {
    /// The system's configuration; `None` when it cannot be read.
    pub fn system() -> Option<HickoryDns> {
        match TokioResolver::builder_tokio() {
            Ok(builder) => Some(HickoryDns(builder.build())),
            Err(error) => {
                tracing::warn!(%error, "cannot read the system's DNS configuration");
                None
            }
        }
    }

    /// These name servers (UDP, then TCP for truncated answers) and no hosts file.
    pub fn servers(servers: &[SocketAddr]) -> HickoryDns {
        let mut group = NameServerConfigGroup::new();
        for server in servers {
            group.merge(NameServerConfigGroup::from_ips_clear(
                &[server.ip()],
                server.port(),
                true,
            ));
        }
        let config = ResolverConfig::from_parts(None, vec![], group);
        let mut options = ResolverOpts::default();
        options.timeout = LOOKUP_TIMEOUT / 2;
        options.attempts = 1;
        options.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        let builder =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(options);
        HickoryDns(builder.build())
    }
}

impl Dns for HickoryDns {
    fn addresses(&self, name: String) -> Answer<IpAddr> {
        let resolver = self.0.clone();
        Box::pin(async move {
            match resolver.lookup_ip(fully_qualified(&name)).await {
                Ok(found) => found.iter().collect(),
                Err(_) => Vec::new(),
            }
        })
    }

    fn services(&self, name: String) -> Answer<SrvRecord> {
        let resolver = self.0.clone();
        Box::pin(async move {
            match resolver.srv_lookup(fully_qualified(&name)).await {
                Ok(found) => found
                    .iter()
                    .map(|srv| SrvRecord {
                        priority: srv.priority(),
                        weight: srv.weight(),
                        port: srv.port(),
                        target: srv.target().to_ascii(),
                    })
                    .collect(),
                Err(_) => Vec::new(),
            }
        })
    }
}

/// A name in a URI is absolute: no search domains are appended.
fn fully_qualified(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

/// The system resolver through getaddrinfo (on tokio's blocking pool), for
/// a machine whose DNS configuration hickory cannot read: addresses only,
/// no SRV.
pub struct SystemDns;

impl Dns for SystemDns {
    fn addresses(&self, name: String) -> Answer<IpAddr> {
        Box::pin(async move {
            match tokio::net::lookup_host((name.as_str(), 0)).await {
                Ok(found) => found.map(|a| a.ip()).collect(),
                Err(_) => Vec::new(),
            }
        })
    }

    fn services(&self, _name: String) -> Answer<SrvRecord> {
        Box::pin(std::future::ready(Vec::new()))
    }
}

/// The DNS a server uses: the configured name servers, else the system's.
pub fn dns_for(servers: &[SocketAddr]) -> Arc<dyn Dns> {
    if !servers.is_empty() {
        return Arc::new(HickoryDns::servers(servers));
    }
    match HickoryDns::system() {
        Some(dns) => Arc::new(dns),
        None => Arc::new(SystemDns),
    }
}

/// Which address families the node can send from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Families {
    pub ipv4: bool,
    pub ipv6: bool,
}

impl Families {
    pub const IPV4: Families = Families {
        ipv4: true,
        ipv6: false,
    };

    pub fn reaches(self, address: IpAddr) -> bool {
        match address {
            IpAddr::V4(_) => self.ipv4,
            IpAddr::V6(_) => self.ipv6,
        }
    }
}

/// The first address a node of `families` can reach, IPv4 first (the
/// family every carrier and PBX has).
fn reachable(addresses: &[IpAddr], families: Families) -> Option<IpAddr> {
    let of = |v4: bool| {
        addresses
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == v4 && families.reaches(*a))
    };
    of(true).or_else(|| of(false))
}

/// RFC 3263 §4 for a plan: SRV for each of its transports in order, the
/// best record's target's addresses; no SRV at all, the name's own.
pub async fn locate(dns: &dyn Dns, plan: &Plan, families: Families) -> Option<Location> {
    match plan {
        Plan::Literal(destination) => families
            .reaches(destination.address.ip())
            .then(|| destination.clone()),
        Plan::Address { name, .. } => {
            let addresses = dns.addresses(name.clone()).await;
            Some(plan.destination(reachable(&addresses, families)?, None))
        }
        Plan::Service { name, transports } => {
            for transport in transports {
                let records = dns
                    .services(format!("{}.{name}", transport.srv_prefix()))
                    .await;
                if records.is_empty() {
                    continue;
                }
                // Records exist: the service is there or refused (`.`), and
                // the name's own addresses are not what it asked for.
                let best = locate::best_srv(&records)?;
                let addresses = dns.addresses(best.target.clone()).await;
                let address = reachable(&addresses, families)?;
                return Some(plan.destination(address, Some((best.port, *transport))));
            }
            let addresses = dns.addresses(name.clone()).await;
            Some(plan.destination(reachable(&addresses, families)?, None))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Pending,
    Resolved(Location),
    Failed,
}

pub struct Names {
    cache: Mutex<HashMap<Plan, Entry>>,
    wanted: mpsc::Sender<Plan>,
    dns: Arc<dyn Dns>,
    families: Families,
}

/// The background resolver; dropping it stops it.
pub struct Resolver(tokio::task::JoinHandle<()>);

impl Drop for Resolver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Names {
    /// The cache and its resolver task (on the current tokio runtime), for
    /// a node that sends from `families`.
    pub fn start(dns: Arc<dyn Dns>, families: Families) -> (Arc<Names>, Resolver) {
        let (wanted, requests) = mpsc::channel(1024);
        let names = Arc::new(Names {
            cache: Mutex::new(HashMap::new()),
            wanted,
            dns,
            families,
        });
        let task = tokio::spawn(run(names.clone(), requests));
        (names, Resolver(task))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Plan, Entry>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where a configured URI's requests go, and how, from its parse and the
    /// cache only: an IP literal at once, a name if it is located; none for
    /// a URI that does not parse, a literal of a family the node cannot
    /// reach, or a name not (yet) located, which is then looked up in the
    /// background.
    pub fn destination(&self, uri: &str) -> Option<Location> {
        let plan = locate::plan(&SipUri::parse(uri).ok()?);
        if let Plan::Literal(destination) = &plan {
            return self
                .families
                .reaches(destination.address.ip())
                .then(|| destination.clone());
        }
        let mut cache = self.cache();
        match cache.get(&plan) {
            Some(Entry::Resolved(destination)) => Some(destination.clone()),
            Some(Entry::Pending | Entry::Failed) => None,
            None => {
                if cache.len() < MAX_NAMES && self.wanted.try_send(plan.clone()).is_ok() {
                    cache.insert(plan, Entry::Pending);
                }
                None
            }
        }
    }

    /// Locates `uri` now, waiting at most [`LOOKUP_TIMEOUT`] (the API, when
    /// a target or fallback is saved); whether it resolved.
    pub async fn resolve(&self, uri: &str) -> bool {
        let Some(plan) = plan_of(uri) else {
            return true;
        };
        let found = locate_bounded(&*self.dns, &plan, self.families).await;
        let resolved = found.is_some();
        self.store(plan, found);
        resolved
    }

    /// Queues the URIs' names for the resolver (at start).
    pub fn want<'a>(&self, uris: impl IntoIterator<Item = &'a str>) {
        for plan in uris.into_iter().filter_map(plan_of) {
            let mut cache = self.cache();
            if cache.len() < MAX_NAMES
                && !cache.contains_key(&plan)
                && self.wanted.try_send(plan.clone()).is_ok()
            {
                cache.insert(plan, Entry::Pending);
            }
        }
    }

    fn store(&self, plan: Plan, found: Option<Location>) {
        let mut cache = self.cache();
        if cache.len() < MAX_NAMES || cache.contains_key(&plan) {
            cache.insert(plan, found.map_or(Entry::Failed, Entry::Resolved));
        }
    }

    fn known(&self) -> Vec<Plan> {
        self.cache().keys().cloned().collect()
    }
}

/// What must be looked up for a URI whose host is a name (IP literals need
/// no lookup).
fn plan_of(uri: &str) -> Option<Plan> {
    match locate::plan(&SipUri::parse(uri).ok()?) {
        Plan::Literal(_) => None,
        plan => Some(plan),
    }
}

async fn locate_bounded(dns: &dyn Dns, plan: &Plan, families: Families) -> Option<Location> {
    tokio::time::timeout(LOOKUP_TIMEOUT, locate(dns, plan, families))
        .await
        .ok()
        .flatten()
}

async fn run(names: Arc<Names>, mut requests: mpsc::Receiver<Plan>) {
    let mut lookups: JoinSet<(Plan, Option<Location>)> = JoinSet::new();
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.tick().await;
    let spawn = |lookups: &mut JoinSet<_>, plan: Plan| {
        let dns = names.dns.clone();
        let families = names.families;
        lookups.spawn(async move {
            let found = locate_bounded(&*dns, &plan, families).await;
            (plan, found)
        });
    };
    loop {
        tokio::select! {
            Some(plan) = requests.recv(), if lookups.len() < MAX_LOOKUPS => {
                spawn(&mut lookups, plan);
            }
            Some(Ok((plan, found))) = lookups.join_next() => names.store(plan, found),
            _ = refresh.tick() => {
                for plan in names.known() {
                    if names.wanted.try_send(plan).is_err() {
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Transport;

    /// A zone: `ok.test` has an address, `srv.test` publishes SIP over TCP
    /// on `pbx.srv.test:5071`, `v6.test` has only an IPv6 address, and
    /// every other name never answers.
    struct Zone;

    impl Dns for Zone {
        fn addresses(&self, name: String) -> Answer<IpAddr> {
            Box::pin(async move {
                match name.as_str() {
                    "ok.test" => vec![IpAddr::from([127, 0, 0, 9])],
                    "pbx.srv.test." | "srv.test" => vec![IpAddr::from([127, 0, 0, 10])],
                    "v6.test" => vec!["::1".parse().unwrap()],
                    _ => std::future::pending().await,
                }
            })
        }

        fn services(&self, name: String) -> Answer<SrvRecord> {
            Box::pin(async move {
                match name.as_str() {
                    "_sip._tcp.srv.test" => vec![SrvRecord {
                        priority: 1,
                        weight: 1,
                        port: 5071,
                        target: "pbx.srv.test.".into(),
                    }],
                    "_sip._udp.ok.test" | "_sip._tcp.ok.test" | "_sip._udp.srv.test" => vec![],
                    _ => std::future::pending().await,
                }
            })
        }
    }

    fn start(families: Families) -> (Arc<Names>, Resolver) {
        Names::start(Arc::new(Zone), families)
    }

    #[tokio::test(start_paused = true)]
    async fn a_name_that_never_answers_fails_only_its_own_uri_and_never_waits() {
        let (names, _resolver) = start(Families::IPV4);
        assert_eq!(
            names.destination("sip:a@127.0.0.1:5070").map(|d| d.address),
            Some("127.0.0.1:5070".parse().unwrap()),
            "IP literals need no lookup"
        );
        assert_eq!(names.destination("sip:a@ok.test:5071"), None, "a miss asks");
        assert_eq!(names.destination("sip:a@stuck.test"), None);
        // The background lookups: one answers, the other times out.
        tokio::time::sleep(LOOKUP_TIMEOUT * 2).await;
        assert_eq!(
            names.destination("sip:a@ok.test:5071").map(|d| d.address),
            Some("127.0.0.9:5071".parse().unwrap())
        );
        assert_eq!(names.destination("sip:a@stuck.test"), None);
        assert!(
            !names.resolve("sip:b@stuck.test").await,
            "bounded by the timeout"
        );
        assert!(names.resolve("sip:b@ok.test").await);
    }

    #[tokio::test(start_paused = true)]
    async fn srv_gives_the_port_and_transport_and_without_it_the_name_is_used() {
        let (names, _resolver) = start(Families::IPV4);
        assert!(names.resolve("sip:a@srv.test").await);
        let found = names.destination("sip:a@srv.test").unwrap();
        assert_eq!(found.address, "127.0.0.10:5071".parse().unwrap());
        assert_eq!(
            found.transport,
            Transport::Tcp,
            "the SRV record's transport"
        );
        assert!(names.resolve("sip:a@ok.test").await);
        let plain = names.destination("sip:a@ok.test").unwrap();
        assert_eq!(plain.address, "127.0.0.9:5060".parse().unwrap());
        assert_eq!(plain.transport, Transport::Udp);
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_of_a_family_the_node_cannot_send_from_is_no_destination() {
        let (v4, _resolver) = start(Families::IPV4);
        assert!(!v4.resolve("sip:a@v6.test:5060").await);
        assert_eq!(v4.destination("sip:a@[::1]:5070"), None);
        let (both, _resolver) = start(Families {
            ipv4: true,
            ipv6: true,
        });
        assert!(both.resolve("sip:a@v6.test:5060").await);
        assert_eq!(
            both.destination("sip:a@v6.test:5060").map(|d| d.address),
            Some("[::1]:5060".parse().unwrap())
        );
        assert!(both.destination("sip:a@[::1]:5070").is_some());
    }
}

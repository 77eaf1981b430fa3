//! Host names of targets and fallbacks, resolved off the call path. A call
//! reads only the cache: a name that is slow or never answers fails its own
//! target (the leg is `unresolvable`), never anyone else's call. Names are
//! resolved when a target or fallback is saved (the API waits, at most
//! [`LOOKUP_TIMEOUT`]), at start for every stored one, on a miss in the
//! background, and again every [`REFRESH`].

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::sip::uri::{Host, SipUri};

/// How long one lookup may take before the name counts as unresolved.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// How often every known name is looked up again.
pub const REFRESH: Duration = Duration::from_secs(60);
/// Names kept at most; past it, new names are not cached (and fail).
const MAX_NAMES: usize = 10_000;
/// Lookups under way at once.
const MAX_LOOKUPS: usize = 16;

/// One lookup: a name to its first IPv4 address, if any.
pub type LookupFuture = Pin<Box<dyn Future<Output = Option<IpAddr>> + Send>>;
/// The resolver behind the cache (the system's, or a test's).
pub type Lookup = Arc<dyn Fn(String) -> LookupFuture + Send + Sync>;

/// The system resolver (getaddrinfo, on tokio's blocking pool).
pub fn system_lookup() -> Lookup {
    Arc::new(|name: String| {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await.ok()?;
            found.map(|a| a.ip()).find(IpAddr::is_ipv4)
        })
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Pending,
    Resolved(IpAddr),
    Failed,
}

pub struct Names {
    cache: Mutex<HashMap<String, Entry>>,
    wanted: mpsc::Sender<String>,
    lookup: Lookup,
}

/// The background resolver; dropping it stops it.
pub struct Resolver(tokio::task::JoinHandle<()>);

impl Drop for Resolver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Names {
    /// The cache and its resolver task (on the current tokio runtime).
    pub fn start(lookup: Lookup) -> (Arc<Names>, Resolver) {
        let (wanted, requests) = mpsc::channel(1024);
        let names = Arc::new(Names {
            cache: Mutex::new(HashMap::new()),
            wanted,
            lookup,
        });
        let task = tokio::spawn(run(names.clone(), requests));
        (names, Resolver(task))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where a configured URI's requests go, from its parse and the cache
    /// only: an IP literal at once, a name if it is resolved; none for a URI
    /// that does not parse or a name not (yet) resolved, which is then
    /// looked up in the background.
    pub fn destination(&self, uri: &str) -> Option<SocketAddr> {
        let uri = SipUri::parse(uri).ok()?;
        if let Some(address) = uri.ip_destination() {
            return Some(address);
        }
        let Host::Name(name) = &uri.host else {
            return None;
        };
        let mut cache = self.cache();
        match cache.get(name.as_str()) {
            Some(Entry::Resolved(ip)) => Some(SocketAddr::new(*ip, uri.port_or_default())),
            Some(Entry::Pending | Entry::Failed) => None,
            None => {
                if cache.len() < MAX_NAMES && self.wanted.try_send(name.clone()).is_ok() {
                    cache.insert(name.clone(), Entry::Pending);
                }
                None
            }
        }
    }

    /// Looks the host of `uri` up now, waiting at most [`LOOKUP_TIMEOUT`]
    /// (the API, when a target or fallback is saved); whether it resolved.
    pub async fn resolve(&self, uri: &str) -> bool {
        let Some(name) = name_of(uri) else {
            return true;
        };
        let found = lookup_bounded(&self.lookup, name.clone()).await;
        self.store(name, found);
        found.is_some()
    }

    /// Queues the hosts of `uris` for the resolver (at start).
    pub fn want<'a>(&self, uris: impl IntoIterator<Item = &'a str>) {
        for name in uris.into_iter().filter_map(name_of) {
            let mut cache = self.cache();
            if cache.len() < MAX_NAMES
                && !cache.contains_key(&name)
                && self.wanted.try_send(name.clone()).is_ok()
            {
                cache.insert(name, Entry::Pending);
            }
        }
    }

    fn store(&self, name: String, found: Option<IpAddr>) {
        let mut cache = self.cache();
        if cache.len() < MAX_NAMES || cache.contains_key(&name) {
            cache.insert(name, found.map_or(Entry::Failed, Entry::Resolved));
        }
    }

    fn known(&self) -> Vec<String> {
        self.cache().keys().cloned().collect()
    }
}

/// The host of a URI when it is a name (IP literals need no lookup).
fn name_of(uri: &str) -> Option<String> {
    match SipUri::parse(uri).ok()?.host {
        Host::Name(name) => Some(name),
        Host::Ip(_) => None,
    }
}

async fn lookup_bounded(lookup: &Lookup, name: String) -> Option<IpAddr> {
    tokio::time::timeout(LOOKUP_TIMEOUT, lookup(name))
        .await
        .ok()
        .flatten()
}

async fn run(names: Arc<Names>, mut requests: mpsc::Receiver<String>) {
    let mut lookups: JoinSet<(String, Option<IpAddr>)> = JoinSet::new();
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.tick().await;
    let spawn = |lookups: &mut JoinSet<_>, name: String| {
        let lookup = names.lookup.clone();
        lookups.spawn(async move {
            let found = lookup_bounded(&lookup, name.clone()).await;
            (name, found)
        });
    };
    loop {
        tokio::select! {
            Some(name) = requests.recv(), if lookups.len() < MAX_LOOKUPS => {
                spawn(&mut lookups, name);
            }
            Some(Ok((name, found))) = lookups.join_next() => names.store(name, found),
            _ = refresh.tick() => {
                for name in names.known() {
                    if names.wanted.try_send(name).is_err() {
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

    /// A resolver that knows `ok.test` and never answers for anything else.
    fn stuck_but_one() -> Lookup {
        Arc::new(|name: String| {
            Box::pin(async move {
                if name == "ok.test" {
                    return Some(IpAddr::from([127, 0, 0, 9]));
                }
                std::future::pending().await
            })
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_name_that_never_answers_fails_only_its_own_uri_and_never_waits() {
        let (names, _resolver) = Names::start(stuck_but_one());
        assert_eq!(
            names.destination("sip:a@127.0.0.1:5070"),
            Some("127.0.0.1:5070".parse().unwrap()),
            "IP literals need no lookup"
        );
        assert_eq!(names.destination("sip:a@ok.test:5071"), None, "a miss asks");
        assert_eq!(names.destination("sip:a@stuck.test"), None);
        // The background lookups: one answers, the other times out.
        tokio::time::sleep(LOOKUP_TIMEOUT * 2).await;
        assert_eq!(
            names.destination("sip:a@ok.test:5071"),
            Some("127.0.0.9:5071".parse().unwrap())
        );
        assert_eq!(names.destination("sip:a@stuck.test"), None);
        assert!(
            !names.resolve("sip:b@stuck.test").await,
            "bounded by the timeout"
        );
        assert!(names.resolve("sip:b@ok.test").await);
    }
}

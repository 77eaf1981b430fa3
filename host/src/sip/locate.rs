//! Locating a SIP server from a URI (RFC 3263 §4), sans-IO: which transport,
//! which DNS questions in which order, and how to rank the answers. The
//! shell asks the questions (`runtime/names.rs`), off the SIP loop.
//!
//! NAPTR is not asked: RFC 3263 lets a client go straight to SRV, and the
//! transports a buyer offers are the SRV names it publishes.

use std::net::{IpAddr, SocketAddr};

use super::uri::{Host, Scheme, SipUri};

/// How requests travel to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    /// TLS over TCP (`sips:` or `;transport=tls`).
    Tls,
}

impl Transport {
    /// The sent-protocol of a Via header.
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The `transport=` URI parameter.
    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            Transport::Udp | Transport::Tcp => 5060,
        }
    }

    /// The SRV service and protocol labels (RFC 3263 §4.2).
    pub fn srv_prefix(self) -> &'static str {
        match self {
            Transport::Udp => "_sip._udp",
            Transport::Tcp => "_sip._tcp",
            Transport::Tls => "_sips._tcp",
        }
    }

    /// Carried on a connection (TCP or TLS), not in datagrams.
    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    fn from_param(value: &str) -> Option<Transport> {
        [Transport::Udp, Transport::Tcp, Transport::Tls]
            .into_iter()
            .find(|t| t.uri_param().eq_ignore_ascii_case(value))
    }
}

/// What must be looked up to reach a URI's server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Plan {
    /// An IP literal: nothing to ask.
    Literal(Location),
    /// A name with a port (or a transport but no SRV to ask): its A/AAAA
    /// records, at this port.
    Address {
        name: String,
        port: u16,
        transport: Transport,
    },
    /// A name without a port: SRV for each transport in order, the first
    /// with records wins; with none, the name's own A/AAAA at the first
    /// transport's default port (§4.2).
    Service {
        name: String,
        transports: Vec<Transport>,
    },
}

/// Where a request goes and how.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    pub address: SocketAddr,
    pub transport: Transport,
    /// The name a TLS server's certificate must carry: the URI's host,
    /// never the SRV target (RFC 5922 §4.1), so a DNS answer cannot
    /// choose whom we trust.
    pub tls_name: Option<String>,
}

/// The transport the URI asks for, if it says: `transport=` first, then
/// `sips:` (TLS).
pub fn stated_transport(uri: &SipUri) -> Option<Transport> {
    let param = uri
        .params
        .iter()
        .find(|(name, _)| name == "transport")
        .and_then(|(_, value)| value.as_deref())
        .and_then(Transport::from_param);
    match (param, &uri.scheme) {
        // `sips:` over `transport=tcp` is TLS over that TCP (RFC 3261 §26.2.2).
        (Some(Transport::Tcp), Scheme::Sips) | (None, Scheme::Sips) => Some(Transport::Tls),
        (param, _) => param,
    }
}

/// The certificate name for a TLS destination whose URI names `host`.
fn tls_name(host: &Host, transport: Transport) -> Option<String> {
    (transport == Transport::Tls).then(|| match host {
        Host::Name(name) => name.trim_end_matches('.').to_owned(),
        Host::Ip(ip) => ip.to_string(),
    })
}

/// RFC 3263 §4.1 and §4.2 for `uri`.
pub fn plan(uri: &SipUri) -> Plan {
    let stated = stated_transport(uri);
    match &uri.host {
        Host::Ip(ip) => {
            let transport = stated.unwrap_or(Transport::Udp);
            Plan::Literal(Location {
                address: SocketAddr::new(*ip, uri.port.unwrap_or(transport.default_port())),
                transport,
                tls_name: tls_name(&uri.host, transport),
            })
        }
        Host::Name(name) => match (uri.port, stated) {
            (Some(port), transport) => Plan::Address {
                name: name.clone(),
                port,
                transport: transport.unwrap_or(Transport::Udp),
            },
            (None, Some(transport)) => Plan::Service {
                name: name.clone(),
                transports: vec![transport],
            },
            (None, None) => Plan::Service {
                name: name.clone(),
                transports: vec![Transport::Udp, Transport::Tcp],
            },
        },
    }
}

impl Plan {
    /// The destination once the shell has looked up what the plan asks:
    /// `found` is the port and transport an SRV answer gave (or none) and
    /// the address its target (or the name) resolved to.
    pub fn destination(&self, address: IpAddr, srv: Option<(u16, Transport)>) -> Location {
        let (name, port, transport) = match (self, srv) {
            (Plan::Literal(destination), _) => return destination.clone(),
            (Plan::Address { name, .. } | Plan::Service { name, .. }, Some((port, transport))) => {
                (name, port, transport)
            }
            (
                Plan::Address {
                    name,
                    port,
                    transport,
                },
                None,
            ) => (name, *port, *transport),
            (Plan::Service { name, transports }, None) => {
                let transport = transports.first().copied().unwrap_or(Transport::Udp);
                (name, transport.default_port(), transport)
            }
        };
        Location {
            address: SocketAddr::new(address, port),
            transport,
            tls_name: tls_name(&Host::Name(name.clone()), transport),
        }
    }
}

/// One SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// The record to use: the lowest priority, and among those the heaviest
/// weight. RFC 2782 asks for a weighted random pick; a B2BUA that fails a
/// leg over to the next bid gains nothing from spreading one buyer's calls
/// itself, and a fixed choice keeps a call's record explainable. A target
/// of `.` says the service is not offered.
pub fn best_srv(records: &[SrvRecord]) -> Option<&SrvRecord> {
    records
        .iter()
        .filter(|r| r.target != "." && !r.target.is_empty())
        .min_by_key(|r| (r.priority, std::cmp::Reverse(r.weight), r.target.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(uri: &str) -> Plan {
        plan(&SipUri::parse(uri).unwrap())
    }

    #[test]
    fn literals_need_no_lookup_and_take_their_transports_default_port() {
        let literal = |address: &str, transport, tls_name: Option<&str>| {
            Plan::Literal(Location {
                address: address.parse().unwrap(),
                transport,
                tls_name: tls_name.map(str::to_owned),
            })
        };
        assert_eq!(
            plan_of("sip:a@192.0.2.1"),
            literal("192.0.2.1:5060", Transport::Udp, None)
        );
        assert_eq!(
            plan_of("sip:a@192.0.2.1;transport=tcp"),
            literal("192.0.2.1:5060", Transport::Tcp, None)
        );
        assert_eq!(
            plan_of("sips:a@192.0.2.1"),
            literal("192.0.2.1:5061", Transport::Tls, Some("192.0.2.1"))
        );
        assert_eq!(
            plan_of("sips:a@[2001:db8::1]:5062;transport=tcp"),
            literal("[2001:db8::1]:5062", Transport::Tls, Some("2001:db8::1"))
        );
        assert_eq!(
            plan_of("sip:a@[::1];transport=tls"),
            literal("[::1]:5061", Transport::Tls, Some("::1"))
        );
    }

    #[test]
    fn a_name_with_a_port_asks_only_for_addresses() {
        assert_eq!(
            plan_of("sip:a@pbx.example.com:5080;transport=tcp"),
            Plan::Address {
                name: "pbx.example.com".into(),
                port: 5080,
                transport: Transport::Tcp
            }
        );
    }

    #[test]
    fn a_name_without_a_port_asks_srv_for_the_transports_it_may_use() {
        assert_eq!(
            plan_of("sip:a@example.com"),
            Plan::Service {
                name: "example.com".into(),
                transports: vec![Transport::Udp, Transport::Tcp]
            }
        );
        assert_eq!(
            plan_of("sips:a@example.com"),
            Plan::Service {
                name: "example.com".into(),
                transports: vec![Transport::Tls]
            }
        );
    }

    #[test]
    fn the_certificate_name_is_the_uris_host_whatever_srv_answered() {
        let uri = SipUri::parse("sips:a@example.com.").unwrap();
        let found = plan(&uri).destination([192, 0, 2, 7].into(), Some((5071, Transport::Tls)));
        assert_eq!(found.address, "192.0.2.7:5071".parse().unwrap());
        assert_eq!(found.tls_name.as_deref(), Some("example.com"));
        let fallback = plan(&uri).destination([192, 0, 2, 7].into(), None);
        assert_eq!(fallback.address.port(), 5061, "no SRV: the default port");
    }

    #[test]
    fn the_best_srv_record_is_the_lowest_priority_then_the_heaviest() {
        let record = |priority, weight, target: &str| SrvRecord {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        };
        let records = [
            record(20, 100, "backup.example."),
            record(10, 5, "light.example."),
            record(10, 60, "heavy.example."),
        ];
        assert_eq!(best_srv(&records).unwrap().target, "heavy.example.");
        assert_eq!(best_srv(&[record(0, 0, ".")]), None, "service refused");
    }
}

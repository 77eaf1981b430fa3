//! SIP and SIPS URIs as tenants configure them (targets, fallbacks): parsed
//! strictly by the grammar of RFC 3261 §25.1, then narrowed to what a B2BUA
//! may safely put on the wire and dial.
//!
//! A configured URI ends up verbatim in the Request-URI and the To header of
//! an INVITE, so every character the grammar does not allow (`<`, `>`, `"`,
//! spaces, control bytes) is refused, as are the parts that would let the
//! URI say one thing and send another: URI headers (`?…`), `maddr`, a
//! password, host names that are numbers in disguise (`2130706433`). Where
//! the INVITE goes is [`SipUri::host`] and [`SipUri::port`] of this one
//! parse; nothing reads the text again.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest URI accepted, in bytes.
pub const MAX_URI_BYTES: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
}

/// Where a URI points: a host name or an IP literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

/// A parsed, checked SIP URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub scheme: Scheme,
    pub user: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    /// `;name[=value]` parameters, in order.
    pub params: Vec<(String, Option<String>)>,
}

/// Why a URI was refused; the message is for the tenant who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("is longer than {MAX_URI_BYTES} bytes")]
    TooLong,
    #[error("must start with sip: or sips:")]
    Scheme,
    #[error("has a character not allowed in a SIP URI at byte {0}")]
    Character(usize),
    #[error("has an invalid user part")]
    User,
    #[error("carries a password, which would travel in clear text")]
    Password,
    #[error("has no valid host (a name such as pbx.example.com, an IPv4 address or [IPv6])")]
    Host,
    #[error("has an invalid port")]
    Port,
    #[error("has an invalid parameter")]
    Param,
    #[error("names the parameter `{0}` twice")]
    DuplicateParam(String),
    #[error("carries URI headers (`?…`), which a target may not set")]
    Headers,
    #[error("has `maddr`, which would send the call elsewhere than its host")]
    Maddr,
    #[error("asks for transport `{0}`; targets are reached over UDP, TCP or TLS")]
    Transport(String),
    #[error("is a sips: URI over UDP; sips: asks for TLS")]
    SipsOverUdp,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// Checks `%HH` escapes and that every other byte passes `allowed`.
fn check_escaped(text: &str, allowed: impl Fn(u8) -> bool) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else if allowed(bytes[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// `user` of §25.1, without `,`, `;`, `?` and `/` (allowed by the grammar,
/// but a configured target has no use for them and each is a delimiter
/// somewhere in a SIP message).
fn is_user_char(b: u8) -> bool {
    is_unreserved(b) || b"&=+$".contains(&b)
}

fn is_param_char(b: u8) -> bool {
    is_unreserved(b) || b"[]/:&+$".contains(&b)
}

/// `hostname` of §25.1: labels of letters, digits and inner hyphens; the
/// last one starts with a letter, so no number is ever taken for a name.
fn is_hostname(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    labels.iter().all(|l| label_ok(l))
        && labels
            .last()
            .is_some_and(|top| top.as_bytes()[0].is_ascii_alphabetic())
}

/// `IPv4address` of §25.1: four decimal octets (no leading-zero tricks).
fn ipv4(text: &str) -> Option<Ipv4Addr> {
    let octets: Vec<&str> = text.split('.').collect();
    if octets.len() != 4
        || octets
            .iter()
            .any(|o| o.is_empty() || o.len() > 3 || (o.len() > 1 && o.starts_with('0')))
    {
        return None;
    }
    text.parse().ok()
}

fn parse_host_port(text: &str) -> Result<(Host, Option<u16>), UriError> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or(UriError::Host)?;
        let ip: Ipv6Addr = inside.parse().map_err(|_| UriError::Host)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(UriError::Port)?),
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        let host = if let Some(ip) = ipv4(host) {
            Host::Ip(IpAddr::V4(ip))
        } else if is_hostname(host) {
            Host::Name(host.to_ascii_lowercase())
        } else {
            return Err(UriError::Host);
        };
        (host, port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or(UriError::Port)?,
        ),
        Some(_) => return Err(UriError::Port),
    };
    Ok((host, port))
}

impl SipUri {
    /// Parses a URI a tenant configured; see the module comment for what is
    /// refused beyond the grammar.
    pub fn parse(text: &str) -> Result<SipUri, UriError> {
        if text.len() > MAX_URI_BYTES {
            return Err(UriError::TooLong);
        }
        if let Some(at) = text.bytes().position(|b| !b.is_ascii_graphic()) {
            return Err(UriError::Character(at));
        }
        let (scheme, rest) = if let Some(rest) = strip_prefix_ignore_case(text, "sips:") {
            (Scheme::Sips, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(text, "sip:") {
            (Scheme::Sip, rest)
        } else {
            return Err(UriError::Scheme);
        };
        if rest.contains('?') {
            return Err(UriError::Headers);
        }
        // The user part ends at the only `@`: `@` is allowed nowhere else,
        // so a second one cannot make two readers disagree on the host.
        let (userinfo, after) = match rest.split_once('@') {
            Some((user, after)) => (Some(user), after),
            None => (None, rest),
        };
        if after.contains('@') {
            return Err(UriError::Host);
        }
        let user = match userinfo {
            None => None,
            Some(info) => {
                if info.contains(':') {
                    return Err(UriError::Password);
                }
                if info.is_empty() || !check_escaped(info, is_user_char) {
                    return Err(UriError::User);
                }
                Some(info.to_owned())
            }
        };
        let mut parts = after.split(';');
        let (host, port) = parse_host_port(parts.next().unwrap_or_default())?;
        let mut params: Vec<(String, Option<String>)> = Vec::new();
        for param in parts {
            let (name, value) = match param.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (param, None),
            };
            let valid = |t: &str| !t.is_empty() && check_escaped(t, is_param_char);
            if !valid(name) || value.is_some_and(|v| !valid(v)) {
                return Err(UriError::Param);
            }
            let name = name.to_ascii_lowercase();
            if params.iter().any(|(n, _)| *n == name) {
                return Err(UriError::DuplicateParam(name));
            }
            match (name.as_str(), value) {
                ("maddr", _) => return Err(UriError::Maddr),
                ("transport", Some(t))
                    if !["udp", "tcp", "tls"]
                        .iter()
                        .any(|known| t.eq_ignore_ascii_case(known)) =>
                {
                    return Err(UriError::Transport(t.to_owned()));
                }
                ("transport", Some(t))
                    if scheme == Scheme::Sips && t.eq_ignore_ascii_case("udp") =>
                {
                    return Err(UriError::SipsOverUdp);
                }
                ("transport", None) => return Err(UriError::Param),
                _ => {}
            }
            params.push((name, value.map(str::to_owned)));
        }
        Ok(SipUri {
            scheme,
            user,
            host,
            port,
            params,
        })
    }

    /// The address the URI's requests go to when its host is an IP literal
    /// (its transport's default port when none is given); a host name needs
    /// the resolver.
    pub fn ip_destination(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port_or_default())),
            Host::Name(_) => None,
        }
    }

    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or_else(|| {
            super::locate::stated_transport(self)
                .unwrap_or(super::locate::Transport::Udp)
                .default_port()
        })
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// The canonical form: what goes on the wire.
impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.scheme {
            Scheme::Sip => "sip:",
            Scheme::Sips => "sips:",
        })?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        for (name, value) in &self.params {
            match value {
                Some(value) => write!(f, ";{name}={value}")?,
                None => write!(f, ";{name}")?,
            }
        }
        Ok(())
    }
}

/// An `http://` or `https://` URL a tenant configured (real-time bid
/// endpoints): an authority with a host, printable ASCII only — no CR, LF
/// or space that could split the request line or a header — and no
/// credentials.
pub fn check_http_url(url: &str) -> Result<(), &'static str> {
    if url.len() > 2048 {
        return Err("is longer than 2048 bytes");
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("has a space or a control character");
    }
    let rest = strip_prefix_ignore_case(url, "https://")
        .or_else(|| strip_prefix_ignore_case(url, "http://"))
        .ok_or("must start with http:// or https://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("carries credentials");
    }
    let host_port = if authority.starts_with('[') {
        authority.to_owned()
    } else {
        authority.to_ascii_lowercase()
    };
    parse_host_port(&host_port)
        .map(drop)
        .map_err(|_| "has no valid host and port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_uris_of_every_day_parse_and_print_back() {
        for uri in [
            "sip:sales@127.0.0.1:5070",
            "sip:+18005550100@pbx.example.com",
            "sips:agent%20one@[2001:db8::1]:5061;lr",
            "sip:192.0.2.10;transport=udp",
            "sip:queue=7&x$@buyer-1.example.net.",
        ] {
            let parsed = SipUri::parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
            assert_eq!(parsed.to_string(), uri);
        }
    }

    #[test]
    fn what_would_break_the_invite_or_send_it_elsewhere_is_refused() {
        let refused = [
            ("sip:inj1>;evil=1@127.0.0.1", UriError::User),
            ("sip:a@127.0.0.1\r\nX-Evil: 1", UriError::Character(15)),
            ("sip:a,b@127.0.0.1", UriError::User),
            ("sip:a@127.0.0.1?Route=%3Csip:x%3E", UriError::Headers),
            ("sip:a@10.0.0.1@127.0.0.1", UriError::Host),
            ("sip:a@127.0.0.1;maddr=10.0.0.1", UriError::Maddr),
            ("sip:a:secret@127.0.0.1", UriError::Password),
            ("sip:a@2130706433", UriError::Host),
            ("sip:a@127.1", UriError::Host),
            ("sip:a@0x7f.0.0.1", UriError::Host),
            ("sip:a@127.000.0.1", UriError::Host),
            ("sip:a@127.0.0.1:0", UriError::Port),
            ("sip:a@127.0.0.1:99999", UriError::Port),
            (
                "sip:a@127.0.0.1;transport=sctp",
                UriError::Transport("sctp".into()),
            ),
            ("sips:a@127.0.0.1;transport=udp", UriError::SipsOverUdp),
            (
                "sip:a@127.0.0.1;lr;lr",
                UriError::DuplicateParam("lr".into()),
            ),
            ("tel:+18005550100", UriError::Scheme),
            ("sip:", UriError::Host),
            ("sip:a@-bad-.example", UriError::Host),
        ];
        for (uri, error) in refused {
            assert_eq!(SipUri::parse(uri), Err(error), "{uri:?}");
        }
    }

    #[test]
    fn the_destination_is_the_parsed_host_and_port() {
        let uri = SipUri::parse("sip:sales@127.0.0.1:5070;x=1").unwrap();
        assert_eq!(
            uri.ip_destination(),
            Some("127.0.0.1:5070".parse().unwrap())
        );
        let default = SipUri::parse("sip:192.0.2.9").unwrap();
        assert_eq!(
            default.ip_destination(),
            Some("192.0.2.9:5060".parse().unwrap())
        );
        let name = SipUri::parse("sip:sales@pbx.example.com:5080").unwrap();
        assert_eq!(name.ip_destination(), None);
        assert_eq!(name.host, Host::Name("pbx.example.com".into()));
    }

    #[test]
    fn real_time_urls_are_http_with_a_host_and_no_line_breaks() {
        assert_eq!(
            check_http_url("https://bids.example.com/v1/bid?x=1"),
            Ok(())
        );
        assert_eq!(check_http_url("http://127.0.0.1:8099/bid"), Ok(()));
        assert_eq!(check_http_url("http://[::1]:80/"), Ok(()));
        for bad in [
            "http://a.example/\r\nX-Evil: 1",
            "http://a.example/ x",
            "ftp://a.example/",
            "http://user:pw@a.example/",
            "http:///path",
            "http://a.example:99999/",
        ] {
            assert!(check_http_url(bad).is_err(), "{bad:?}");
        }
    }
}

//! The top Via and the transport (RFC 3261 §18.2.1–§18.2.2, RFC 3581):
//! stamping `received`/`rport` on a request from where it really came, and
//! where a response to it goes.

use std::net::{IpAddr, SocketAddr};

use super::message::Message;

/// The sent-by of a Via value as written (`host:port` of `SIP/2.0/UDP host:port;…`).
pub(crate) fn sent_by_text(via: &str) -> Option<&str> {
    via.split(';').next()?.split_whitespace().nth(1)
}

/// The sent-by host and port of a Via value.
fn sent_by(via: &str) -> Option<(&str, Option<u16>)> {
    let address = sent_by_text(via)?;
    if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((host, port));
    }
    match address.rsplit_once(':') {
        Some((host, port)) => Some((host, port.parse().ok())),
        None => Some((address, None)),
    }
}

/// A Via parameter's value (`branch`, `received`, `rport`…); empty for a
/// parameter without one.
pub(crate) fn param<'a>(via: &'a str, name: &str) -> Option<&'a str> {
    via.split(';').skip(1).find_map(|p| {
        let (key, value) = p.split_once('=').unwrap_or((p, ""));
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// Records where a request came from in its top Via: `received` when the
/// sent-by host is not the source address (RFC 3261 §18.2.1), and `rport`'s
/// value when the client asked for it (RFC 3581 §4).
pub fn stamp_received(request: &mut Message, source: SocketAddr) {
    let Some(header) = request.headers.iter_mut().find(|h| h.name == "Via") else {
        return;
    };
    let (top, rest) = match header.value.split_once(',') {
        Some((top, rest)) => (top.trim().to_owned(), Some(rest.to_owned())),
        None => (header.value.clone(), None),
    };
    let mut params: Vec<String> = top.split(';').map(str::to_owned).collect();
    let host_differs =
        sent_by(&top).is_none_or(|(host, _)| host.parse::<IpAddr>().ok() != Some(source.ip()));
    let wants_rport = params
        .iter()
        .skip(1)
        .any(|p| p.trim().eq_ignore_ascii_case("rport"));
    params.retain(|p| {
        let p = p.trim().to_ascii_lowercase();
        !(p == "rport" || p.starts_with("received="))
    });
    if host_differs || wants_rport {
        params.push(format!("received={}", source.ip()));
    }
    if wants_rport {
        params.push(format!("rport={}", source.port()));
    }
    let mut value = params.join(";");
    if let Some(rest) = rest {
        value.push(',');
        value.push_str(&rest);
    }
    header.value = value;
}

/// Where a response goes over an unreliable transport (RFC 3261 §18.2.2 with
/// RFC 3581): the top Via's `received` address (else its sent-by host), at
/// `rport` (else the sent-by port, else 5060).
pub fn response_address(response: &Message) -> Option<SocketAddr> {
    let top = response.header("Via")?.split(',').next()?;
    let (host, port) = sent_by(top)?;
    let ip: IpAddr = param(top, "received").unwrap_or(host).parse().ok()?;
    let port = param(top, "rport")
        .and_then(|p| p.parse().ok())
        .or(port)
        .unwrap_or(5060);
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Header, StartLine};

    fn with_via(via: &str) -> Message {
        Message {
            start: StartLine::Response {
                code: 200,
                reason: "OK".into(),
            },
            headers: vec![Header {
                name: "Via".into(),
                value: via.into(),
            }],
            body: vec![],
        }
    }

    #[test]
    fn rport_is_filled_and_received_added_as_rfc_3581_asks() {
        let mut m = with_via("SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa;rport");
        stamp_received(&mut m, "192.0.2.7:40000".parse().unwrap());
        assert_eq!(
            m.header("Via"),
            Some("SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa;received=192.0.2.7;rport=40000")
        );
        assert_eq!(
            response_address(&m),
            Some("192.0.2.7:40000".parse().unwrap())
        );
    }

    #[test]
    fn received_only_when_the_sent_by_host_is_not_the_source() {
        let mut same = with_via("SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKb");
        stamp_received(&mut same, "192.0.2.7:5070".parse().unwrap());
        assert_eq!(
            same.header("Via"),
            Some("SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKb")
        );
        assert_eq!(
            response_address(&same),
            Some("192.0.2.7:5070".parse().unwrap())
        );
        let mut named =
            with_via("SIP/2.0/UDP carrier.example;branch=z9hG4bKc, SIP/2.0/UDP 10.1.1.1");
        stamp_received(&mut named, "192.0.2.9:5060".parse().unwrap());
        assert_eq!(
            named.header("Via"),
            Some(
                "SIP/2.0/UDP carrier.example;branch=z9hG4bKc;received=192.0.2.9, SIP/2.0/UDP 10.1.1.1"
            )
        );
        assert_eq!(
            response_address(&named),
            Some("192.0.2.9:5060".parse().unwrap())
        );
    }
}

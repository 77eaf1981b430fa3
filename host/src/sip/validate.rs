//! What a well-formed message must also satisfy (RFC 3261 §8.1.1, §20), and
//! the UAS checks of §8.2 in their order. Each refusal names the status to
//! answer and a reason phrase that says what was wrong.

use super::message::{Message, Method, StartLine};
use super::parse::is_token;

/// A refusal: the status code, its reason phrase and headers to add
/// (`Allow`, `Unsupported`, `Accept`…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub reason: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Refusal {
    fn bad_request(reason: impl Into<String>) -> Self {
        Refusal {
            code: 400,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }
}

/// Headers a message carries at most once.
const SINGLE: &[&str] = &[
    "To",
    "From",
    "CSeq",
    "Call-ID",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
];

/// The parts of a CSeq value: sequence number and method.
pub fn cseq(value: &str) -> Option<(u32, Method)> {
    let mut parts = value.split_whitespace();
    let (Some(number), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let number: u32 = number.parse().ok().filter(|n| *n < 1 << 31)?;
    Some((number, Method::from_token(method)))
}

/// Structural checks of a parsed message; a request failing one gets the
/// returned 400, a response failing one is dropped.
pub fn validate(message: &Message) -> Result<(), Refusal> {
    // Max-Forwards is not required of requests: RFC 2543 elements do not
    // send it (RFC 4475 §3.4), and it counts as 70.
    for name in ["To", "From", "CSeq", "Call-ID", "Via"] {
        if message.header(name).is_none_or(str::is_empty) {
            return Err(Refusal::bad_request(format!("Missing {name} header")));
        }
    }
    for name in SINGLE {
        if message.header_values(name).nth(1).is_some() {
            return Err(Refusal::bad_request(format!("Multiple {name} headers")));
        }
    }
    let (_, cseq_method) = message
        .header("CSeq")
        .and_then(cseq)
        .ok_or_else(|| Refusal::bad_request("Malformed CSeq header"))?;
    if let Some(method) = message.method()
        && *method != cseq_method
    {
        return Err(Refusal::bad_request(
            "CSeq method does not match the request method",
        ));
    }
    if let Some(hops) = message.header("Max-Forwards") {
        // 1*DIGIT: leading zeros are allowed (`0068`).
        let valid =
            !hops.is_empty() && hops.len() <= 10 && hops.bytes().all(|b| b.is_ascii_digit());
        if !valid || hops.parse::<u64>().map_or(true, |h| h > 255) {
            return Err(Refusal::bad_request(
                "Max-Forwards is not a number from 0 to 255",
            ));
        }
    }
    for via in message.header_values("Via") {
        let protocol = via.split_whitespace().next().unwrap_or_default();
        let mut parts = protocol.split('/');
        let sip_2 = matches!((parts.next(), parts.next()), (Some(n), Some("2.0")) if n.eq_ignore_ascii_case("SIP"));
        if !sip_2 || parts.next().is_none() || via.split_whitespace().nth(1).is_none() {
            return Err(Refusal::bad_request("Malformed Via header"));
        }
        let empty_param = via.split(';').skip(1).any(|param| {
            let (name, value) = param.split_once('=').unwrap_or((param, "x"));
            name.trim().is_empty() || value.trim().is_empty()
        });
        if empty_param {
            return Err(Refusal::bad_request(
                "Malformed Via header: an empty parameter",
            ));
        }
    }
    if let StartLine::Request { uri, .. } = &message.start
        && uri.contains('?')
        && (uri.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("sip:"))
            || uri
                .get(..5)
                .is_some_and(|s| s.eq_ignore_ascii_case("sips:")))
    {
        return Err(Refusal::bad_request(
            "the Request-URI carries headers (`?…`), which only a URI in a header may",
        ));
    }
    if message.is_request() {
        for name in ["To", "From", "Contact"] {
            for value in message.header_values(name) {
                name_addrs(value).map_err(|why| {
                    Refusal::bad_request(format!("Malformed {name} header: {why}"))
                })?;
            }
        }
    }
    Ok(())
}

/// Whether a multipart body (RFC 2046; carriers send SDP beside ISUP in
/// `multipart/mixed`) has a session description among its parts: then it is
/// an offer Plugboard relays whole.
fn multipart_has_sdp(content_type: &str, body: &[u8]) -> bool {
    let Some(boundary) = content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"'))
    }) else {
        return false;
    };
    // Binary parts (ISUP) are fine: only the parts' headers are read.
    String::from_utf8_lossy(body)
        .split(&format!("--{boundary}"))
        .any(part_is_sdp)
}

fn part_is_sdp(part: &str) -> bool {
    let head = part
        .trim_start_matches(['\r', '\n'])
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default();
    head.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("Content-Type")
                && media_type(value) == "application/sdp"
        })
    })
}

/// Checks a header value of name-addrs or addr-specs (RFC 3261 §20.10),
/// comma-separated: a display name is tokens or one quoted string, the URI
/// inside `<>` holds no whitespace, and only parameters follow it.
fn name_addrs(value: &str) -> Result<(), &'static str> {
    let value = value.trim();
    if value == "*" {
        return Ok(());
    }
    let mut rest = value;
    loop {
        rest = rest.trim_start();
        let after_name = if let Some(quoted) = rest.strip_prefix('"') {
            let end = closing_quote(quoted).ok_or("an unbalanced quote")?;
            let after = quoted[end + 1..].trim_start();
            if !after.starts_with('<') {
                return Err("a quoted display name without <URI>");
            }
            after
        } else if let Some(open) = rest.find('<').filter(|open| {
            // A `<` after a `;` or `,` belongs to a later element.
            !rest[..*open].contains([';', ','])
        }) {
            let display = &rest[..open];
            if !display.split_whitespace().all(is_token) {
                return Err("a display name that is neither tokens nor quoted");
            }
            &rest[open..]
        } else {
            rest
        };
        let after_uri = if let Some(inside) = after_name.strip_prefix('<') {
            let close = inside.find('>').ok_or("a `<` without `>`")?;
            let uri = &inside[..close];
            if uri.is_empty() || uri.contains(char::is_whitespace) || !uri.contains(':') {
                return Err("whitespace or no URI inside <>");
            }
            &inside[close + 1..]
        } else {
            let end = after_name.find([';', ',']).unwrap_or(after_name.len());
            let uri = after_name[..end].trim();
            if !uri.contains(':') && rest.contains('<') {
                return Err("a display name that is neither tokens nor quoted");
            }
            if uri.is_empty() || uri.contains(char::is_whitespace) || !uri.contains(':') {
                return Err("a URI with whitespace in it");
            }
            &after_name[end..]
        };
        // Parameters up to the next element, if any.
        let params = after_uri.trim_start();
        if !params.is_empty() && !params.starts_with([';', ',']) {
            return Err("text after the URI that is not a parameter");
        }
        match next_element(params) {
            Some(next) => rest = next,
            None => return Ok(()),
        }
    }
}

/// The index of the quote that ends a quoted string (after the opening
/// one), skipping `\`-escaped characters.
fn closing_quote(quoted: &str) -> Option<usize> {
    let mut escaped = false;
    for (at, c) in quoted.char_indices() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => return Some(at),
            _ => {}
        }
    }
    None
}

/// What follows the first comma outside quotes in `params`, if any.
fn next_element(params: &str) -> Option<&str> {
    let mut quoted = false;
    for (at, c) in params.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => return Some(&params[at + 1..]),
            _ => {}
        }
    }
    None
}

/// The methods a B2BUA takes, as `Allow` lists them: calls and their
/// in-dialog requests.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, PRACK";

/// What this UAS supports, for the §8.2 checks.
#[derive(Debug, Clone)]
pub struct Capabilities {
    pub methods: Vec<Method>,
    pub uri_schemes: Vec<&'static str>,
    pub option_tags: Vec<&'static str>,
    pub content_types: Vec<&'static str>,
}

impl Default for Capabilities {
    /// A B2BUA's: calls, their in-dialog requests, and SDP bodies.
    fn default() -> Self {
        Capabilities {
            methods: ALLOW.split(", ").map(Method::from_token).collect(),
            uri_schemes: vec!["sip", "sips", "tel"],
            option_tags: vec!["timer", "replaces"],
            content_types: vec!["application/sdp"],
        }
    }
}

impl Capabilities {
    /// The `Allow` header's value for these methods.
    pub fn allow(&self) -> String {
        self.methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// RFC 3261 §8.2, in order: method, Request-URI scheme, Require, body type,
/// Accept, then Max-Forwards 0.
pub fn uas_check(request: &Message, caps: &Capabilities) -> Result<(), Refusal> {
    let StartLine::Request { method, uri } = &request.start else {
        return Ok(());
    };
    let allow = || caps.allow();
    if !caps.methods.contains(method) {
        let known = !matches!(method, Method::Extension(_));
        return Err(Refusal {
            code: if known { 405 } else { 501 },
            reason: if known {
                "Method Not Allowed".into()
            } else {
                "Not Implemented".into()
            },
            headers: vec![("Allow", allow())],
        });
    }
    let scheme = uri
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !caps.uri_schemes.contains(&scheme.as_str()) {
        return Err(Refusal {
            code: 416,
            reason: format!("Unsupported URI Scheme {scheme}"),
            headers: Vec::new(),
        });
    }
    // ACK and CANCEL carry no Require that could be refused (§8.2.2.3).
    if !matches!(method, Method::Ack | Method::Cancel) {
        let unsupported: Vec<&str> = request
            .header_items("Require")
            .filter(|t| !caps.option_tags.contains(t))
            .collect();
        if !unsupported.is_empty() {
            return Err(Refusal {
                code: 420,
                reason: "Bad Extension".into(),
                headers: vec![("Unsupported", unsupported.join(", "))],
            });
        }
    }
    // Only a session description is ours to understand (§8.2.3): the body
    // of an INFO or a MESSAGE is the far end's, and is relayed as it is.
    let describes_session = matches!(
        method,
        Method::Invite | Method::Ack | Method::Prack | Method::Update
    );
    if describes_session && (!request.body.is_empty() || request.header("Content-Type").is_some()) {
        let body_type = request
            .header("Content-Type")
            .map(media_type)
            .unwrap_or_default();
        let encoding = request
            .header("Content-Encoding")
            .map(|e| e.trim().to_ascii_lowercase());
        let understood = caps.content_types.contains(&body_type.as_str())
            || (body_type.starts_with("multipart/")
                && request
                    .header("Content-Type")
                    .is_some_and(|kind| multipart_has_sdp(kind, &request.body)));
        if !understood || encoding.is_some_and(|e| e != "identity") {
            return Err(Refusal {
                code: 415,
                reason: "Unsupported Media Type".into(),
                headers: vec![
                    ("Accept", caps.content_types.join(", ")),
                    ("Accept-Encoding", "identity".into()),
                ],
            });
        }
    }
    let accepts: Vec<String> = request
        .header_items("Accept")
        .map(media_type)
        .filter(|t| !t.is_empty())
        .collect();
    let acceptable =
        |t: &String| t == "*/*" || t == "application/*" || caps.content_types.contains(&t.as_str());
    if matches!(method, Method::Invite) && !accepts.is_empty() && !accepts.iter().any(acceptable) {
        return Err(Refusal {
            code: 406,
            reason: "Not Acceptable".into(),
            headers: vec![("Accept", caps.content_types.join(", "))],
        });
    }
    if request.header("Max-Forwards") == Some("0") && *method != Method::Options {
        return Err(Refusal {
            code: 483,
            reason: "Too Many Hops".into(),
            headers: Vec::new(),
        });
    }
    Ok(())
}

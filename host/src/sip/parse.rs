//! Parsing SIP from the wire (RFC 3261 §7, §18.3): framing by Content-Length
//! for datagrams and streams, header folding undone, whitespace before the
//! colon allowed, compact names expanded, any method token accepted. Every
//! failure carries its byte offset and, for a request, what was read of it,
//! so that a stateless error response can still be sent.

use super::message::{Header, Message, Method, StartLine, canonical_name};

/// Largest message accepted; beyond it a request gets `513 Message Too Large`.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("empty message")]
    Empty,
    #[error("no blank line ends the headers")]
    NoHeaderEnd,
    #[error("malformed start line: {0}")]
    StartLine(&'static str),
    #[error("unsupported SIP version {0}")]
    Version(String),
    #[error("malformed header line: {0}")]
    HeaderLine(&'static str),
    #[error("bad Content-Length: {0}")]
    ContentLength(&'static str),
    #[error("body shorter than its Content-Length ({received} of {declared} bytes)")]
    BodyTruncated { declared: usize, received: usize },
    #[error("message of {0} bytes is too large")]
    TooLarge(usize),
    #[error("the headers are not UTF-8")]
    NotUtf8,
}

/// What was read of a request before it failed: enough to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialRequest {
    pub method: Method,
    pub headers: Vec<Header>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (byte {offset})")]
pub struct ParseError {
    pub offset: usize,
    pub kind: ParseErrorKind,
    pub partial: Option<PartialRequest>,
}

impl ParseError {
    fn at(offset: usize, kind: ParseErrorKind) -> Self {
        ParseError {
            offset,
            kind,
            partial: None,
        }
    }
}

/// Where the headers end: the offset of the body, after the blank line.
/// CRLF is the line end; a bare LF is accepted too.
fn header_end(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(nl) = bytes[i..].iter().position(|&b| b == b'\n') {
        let at = i + nl;
        let rest = &bytes[at + 1..];
        if rest.starts_with(b"\r\n") {
            return Some(at + 3);
        }
        if rest.starts_with(b"\n") {
            return Some(at + 2);
        }
        i = at + 1;
    }
    None
}

/// RFC 3261's `token`: what methods, header names and unquoted display
/// names are made of.
pub(crate) fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

fn start_line(line: &str) -> Result<StartLine, ParseErrorKind> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        let (version, rest) = rest
            .split_once(' ')
            .ok_or(ParseErrorKind::StartLine("no status code"))?;
        if version != "2.0" {
            return Err(ParseErrorKind::Version(format!("SIP/{version}")));
        }
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let code: u16 = code
            .parse()
            .ok()
            .filter(|c| (100..700).contains(c) && code.len() == 3)
            .ok_or(ParseErrorKind::StartLine(
                "status code is not three digits from 100 to 699",
            ))?;
        return Ok(StartLine::Response {
            code,
            reason: reason.to_owned(),
        });
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseErrorKind::StartLine(
            "a request line is METHOD SP Request-URI SP SIP/2.0",
        ));
    };
    if !is_token(method) {
        return Err(ParseErrorKind::StartLine("the method is not a token"));
    }
    if uri.is_empty() || uri.starts_with('<') || !uri.contains(':') {
        return Err(ParseErrorKind::StartLine(
            "the Request-URI is not an absolute URI (no <> around it)",
        ));
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(ParseErrorKind::Version(version.to_owned()));
    }
    Ok(StartLine::Request {
        method: Method::from_token(method),
        uri: uri.to_owned(),
    })
}

/// Headers from the lines after the start line, folding undone.
fn header_lines(
    head: &str,
    mut offset: usize,
    headers: &mut Vec<Header>,
) -> Result<(), ParseError> {
    for raw in head.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let line_offset = offset;
        offset += raw.len() + 1;
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // RFC 3261 §7.3.1: a continuation line joins the previous value.
            let Some(previous) = headers.last_mut() else {
                return Err(ParseError::at(
                    line_offset,
                    ParseErrorKind::HeaderLine("continuation before any header"),
                ));
            };
            previous.value.push(' ');
            previous.value.push_str(line.trim());
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ParseError::at(
                line_offset,
                ParseErrorKind::HeaderLine("no colon"),
            ));
        };
        let name = name.trim_end_matches([' ', '\t']);
        if !is_token(name) {
            return Err(ParseError::at(
                line_offset,
                ParseErrorKind::HeaderLine("the name is not a token"),
            ));
        }
        headers.push(Header {
            name: canonical_name(name),
            value: value.trim().to_owned(),
        });
    }
    // Once continuation lines are joined: a sent-protocol may be folded.
    for via in headers.iter_mut().filter(|h| h.name == "Via") {
        via.value = tight_via(&via.value);
    }
    Ok(())
}

/// Via values with the whitespace RFC 3261 allows around the slashes of
/// each sent-protocol (`SIP / 2.0 / UDP`) taken out, so that every later
/// reader sees `SIP/2.0/UDP`.
fn tight_via(value: &str) -> String {
    let loose = value
        .as_bytes()
        .windows(2)
        .any(|w| matches!(w, [b' ' | b'\t', b'/'] | [b'/', b' ' | b'\t']));
    if !loose {
        return value.to_owned();
    }
    value
        .split(',')
        .map(|via| {
            let mut tight = String::with_capacity(via.len());
            let mut rest = via.trim();
            for _ in 0..2 {
                let Some((part, after)) = rest.split_once('/') else {
                    return via.trim().to_owned();
                };
                tight.push_str(part.trim());
                tight.push('/');
                rest = after.trim_start();
            }
            tight.push_str(rest);
            tight
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The declared body length, if any; several that disagree are an error.
fn content_length(headers: &[Header]) -> Result<Option<usize>, ParseErrorKind> {
    let mut declared = None;
    for header in headers.iter().filter(|h| h.name == "Content-Length") {
        if header.value.is_empty() || !header.value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseErrorKind::ContentLength(
                "not a non-negative decimal number",
            ));
        }
        let value: usize = header
            .value
            .parse()
            .map_err(|_| ParseErrorKind::ContentLength("too large"))?;
        if declared.is_some_and(|d| d != value) {
            return Err(ParseErrorKind::ContentLength("two different values"));
        }
        declared = Some(value);
    }
    Ok(declared)
}

/// Start line and headers of `bytes[..body_at]`.
fn head(bytes: &[u8], body_at: usize) -> Result<(StartLine, Vec<Header>), ParseError> {
    let text = std::str::from_utf8(&bytes[..body_at])
        .map_err(|e| ParseError::at(e.valid_up_to(), ParseErrorKind::NotUtf8))?;
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let first_line = first.strip_suffix('\r').unwrap_or(first);
    let mut headers = Vec::with_capacity(16);
    let start = match start_line(first_line) {
        Ok(start) => start,
        Err(kind) => {
            // A request with a bad start line is still answered (400 or 505)
            // when its headers can be read.
            let method = first_line
                .split(' ')
                .next()
                .filter(|m| !m.is_empty() && !m.starts_with("SIP/"));
            let partial = method.and_then(|method| {
                header_lines(rest, first.len() + 1, &mut headers).ok()?;
                Some(PartialRequest {
                    method: Method::from_token(method),
                    headers: headers.clone(),
                })
            });
            return Err(ParseError {
                offset: 0,
                kind,
                partial,
            });
        }
    };
    let result = header_lines(rest, first.len() + 1, &mut headers);
    result.map_err(|error| with_partial(error.kind, error.offset, &start, &headers))?;
    Ok((start, headers))
}

fn with_partial(
    error: ParseErrorKind,
    offset: usize,
    start: &StartLine,
    headers: &[Header],
) -> ParseError {
    ParseError {
        offset,
        kind: error,
        partial: match start {
            StartLine::Request { method, .. } => Some(PartialRequest {
                method: method.clone(),
                headers: headers.to_vec(),
            }),
            StartLine::Response { .. } => None,
        },
    }
}

/// Parses one datagram (UDP, RFC 3261 §18.3): the body is Content-Length
/// bytes (extra bytes are discarded), or the rest of the datagram without it.
pub fn parse_datagram(bytes: &[u8]) -> Result<Message, ParseError> {
    // Keep-alives and stray line ends before the message are not part of it.
    let skipped = bytes
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let bytes = &bytes[skipped..];
    if bytes.is_empty() {
        return Err(ParseError::at(skipped, ParseErrorKind::Empty));
    }
    let body_at = header_end(bytes)
        .ok_or_else(|| ParseError::at(skipped + bytes.len(), ParseErrorKind::NoHeaderEnd))?;
    let (start, headers) = head(bytes, body_at).map_err(|e| ParseError {
        offset: e.offset + skipped,
        ..e
    })?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(with_partial(
            ParseErrorKind::TooLarge(bytes.len()),
            skipped,
            &start,
            &headers,
        ));
    }
    let available = bytes.len() - body_at;
    let body_len = match content_length(&headers) {
        Ok(Some(declared)) if declared > available => {
            let kind = ParseErrorKind::BodyTruncated {
                declared,
                received: available,
            };
            return Err(with_partial(kind, skipped + bytes.len(), &start, &headers));
        }
        Ok(Some(declared)) => declared,
        Ok(None) => available,
        Err(kind) => return Err(with_partial(kind, skipped, &start, &headers)),
    };
    Ok(Message {
        start,
        headers,
        body: bytes[body_at..body_at + body_len].to_vec(),
    })
}

/// Frames messages out of a byte stream (TCP, RFC 3261 §18.3): Content-Length
/// is mandatory; CRLF keep-alives between messages (RFC 5626) are skipped.
/// After an error the stream cannot be resynchronised: close the connection.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buffer: Vec<u8>,
}

impl StreamFramer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message, `None` until one is complete.
    pub fn next_message(&mut self) -> Option<Result<Message, ParseError>> {
        let skipped = self
            .buffer
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        self.buffer.drain(..skipped);
        if self.buffer.is_empty() {
            return None;
        }
        let Some(body_at) = header_end(&self.buffer) else {
            if self.buffer.len() > MAX_MESSAGE_BYTES {
                return Some(Err(ParseError::at(
                    self.buffer.len(),
                    ParseErrorKind::TooLarge(self.buffer.len()),
                )));
            }
            return None;
        };
        let (start, headers) = match head(&self.buffer, body_at) {
            Ok(parsed) => parsed,
            Err(error) => return Some(Err(error)),
        };
        let declared = match content_length(&headers) {
            Ok(Some(declared)) => declared,
            Ok(None) => {
                let kind =
                    ParseErrorKind::ContentLength("missing; it is mandatory on stream transports");
                return Some(Err(with_partial(kind, 0, &start, &headers)));
            }
            Err(kind) => return Some(Err(with_partial(kind, 0, &start, &headers))),
        };
        if body_at + declared > MAX_MESSAGE_BYTES {
            return Some(Err(with_partial(
                ParseErrorKind::TooLarge(body_at + declared),
                0,
                &start,
                &headers,
            )));
        }
        if self.buffer.len() < body_at + declared {
            return None;
        }
        let body = self.buffer[body_at..body_at + declared].to_vec();
        self.buffer.drain(..body_at + declared);
        Some(Ok(Message {
            start,
            headers,
            body,
        }))
    }
}

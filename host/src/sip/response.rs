//! Building responses to requests (RFC 3261 §8.2.6): Via, From, To, Call-ID
//! and CSeq copied, a To tag added to final responses that lack one.

use super::message::{Header, Message, StartLine};

/// The reason phrase RFC 3261 gives a status code.
pub fn default_reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        _ => "Unknown",
    }
}

/// A response to a request given by its headers (a parsed request's, or
/// what a failed parse could read). `to_tag` is added to the To header of a
/// non-100 response that has none.
pub fn response_to(
    request_headers: &[Header],
    code: u16,
    reason: &str,
    to_tag: &str,
    extra: &[(&str, String)],
) -> Message {
    let mut headers = Vec::with_capacity(8 + extra.len());
    for header in request_headers {
        let copied = matches!(
            header.name.as_str(),
            "Via" | "From" | "Call-ID" | "CSeq" | "To"
        );
        if !copied {
            continue;
        }
        let mut value = header.value.clone();
        if header.name == "To" && code != 100 && !has_tag(&value) {
            value.push_str(";tag=");
            value.push_str(to_tag);
        }
        headers.push(Header {
            name: header.name.clone(),
            value,
        });
    }
    for (name, value) in extra {
        headers.push(Header {
            name: (*name).to_owned(),
            value: value.clone(),
        });
    }
    headers.push(Header {
        name: "Content-Length".to_owned(),
        value: "0".to_owned(),
    });
    Message {
        start: StartLine::Response {
            code,
            reason: reason.to_owned(),
        },
        headers,
        body: Vec::new(),
    }
}

/// Whether a From/To value has a `tag` parameter (outside the URI's `<>`).
pub fn has_tag(value: &str) -> bool {
    super::message::tag_param(value).is_some()
}

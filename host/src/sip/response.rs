//! Building responses to requests (RFC 3261 §8.2.6): Via, From, To, Call-ID
//! and CSeq copied, a To tag added to final responses that lack one.

use super::message::{Header, Message, StartLine};

/// The reason phrase RFC 3261 §21 (and RFC 3262, 3265, 4028) gives a status
/// code; for a code none defines, one for its class.
pub fn default_reason(code: u16) -> &'static str {
    named_reason(code).unwrap_or(match code / 100 {
        1 => "Session Progress",
        2 => "OK",
        3 => "Redirection",
        4 => "Request Failure",
        5 => "Server Failure",
        _ => "Global Failure",
    })
}

fn named_reason(code: u16) -> Option<&'static str> {
    Some(match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => return None,
    })
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

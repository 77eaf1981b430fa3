//! The SIP message layer, sans-IO: parse (datagrams and streams), validate,
//! the UAS checks of RFC 3261 §8.2, responses, and the strict URI parse of
//! what tenants configure. Our own small parser, not
//! rsip: see `docs/sip.md` for why.

pub mod locate;
mod message;
mod parse;
mod response;
pub mod uri;
mod validate;
pub(crate) mod via;

pub use locate::{Location, Transport};
pub use message::{Header, Message, Method, StartLine, canonical_name, tag_param};
pub use parse::{
    MAX_MESSAGE_BYTES, ParseError, ParseErrorKind, PartialRequest, StreamFramer, parse_datagram,
};
pub use response::{default_reason, has_tag, response_to};
pub use uri::{SipUri, UriError};
pub use validate::{ALLOW, Capabilities, Refusal, cseq, uas_check, validate};
pub use via::{response_address, stamp_received};

/// What the server does with one received datagram, before any transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A request that passed every check.
    Request(Message),
    /// A response that passed every check.
    Response(Message),
    /// A request refused statelessly: send this response.
    Refuse(Message),
    /// Unanswerable (a broken response, or a request too broken to answer): count it.
    Drop(String),
}

/// Parses, validates and runs the UAS checks on one datagram. `to_tag` tags
/// the To header of a refusal.
pub fn inspect(bytes: &[u8], caps: &Capabilities, to_tag: &str) -> Inbound {
    inspect_parsed(parse_datagram(bytes), caps, to_tag)
}

/// As [`inspect`], for a message already framed (by [`StreamFramer`]).
pub fn inspect_parsed(
    parsed: Result<Message, ParseError>,
    caps: &Capabilities,
    to_tag: &str,
) -> Inbound {
    let message = match parsed {
        Ok(message) => message,
        Err(error) => {
            let Some(partial) = &error.partial else {
                return Inbound::Drop(error.to_string());
            };
            let has = |name: &str| partial.headers.iter().any(|h| h.name == name);
            if !["Via", "From", "To", "Call-ID", "CSeq"]
                .into_iter()
                .all(has)
            {
                return Inbound::Drop(error.to_string());
            }
            let (code, reason) = match &error.kind {
                ParseErrorKind::Version(_) => (505, default_reason(505).to_owned()),
                ParseErrorKind::TooLarge(_) => (513, default_reason(513).to_owned()),
                kind => (400, kind.to_string()),
            };
            return Inbound::Refuse(response_to(&partial.headers, code, &reason, to_tag, &[]));
        }
    };
    if let Err(refusal) = validate(&message) {
        if !message.is_request() {
            return Inbound::Drop(refusal.reason);
        }
        return Inbound::Refuse(response_to(
            &message.headers,
            refusal.code,
            &refusal.reason,
            to_tag,
            &[],
        ));
    }
    if !message.is_request() {
        return Inbound::Response(message);
    }
    match uas_check(&message, caps) {
        Ok(()) => Inbound::Request(message),
        Err(refusal) => Inbound::Refuse(response_to(
            &message.headers,
            refusal.code,
            &refusal.reason,
            to_tag,
            &refusal.headers,
        )),
    }
}

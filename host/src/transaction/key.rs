//! Matching messages to transactions: RFC 3261 §17.1.3 (client) and §17.2.3
//! (server), with the RFC 2543 fallback for requests without the magic cookie.

use crate::sip::{Message, Method, cseq, tag_param, via};

/// The RFC 3261 branch prefix.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransactionKey {
    /// Branch (with the magic cookie), sent-by of the top Via, and method
    /// (ACK counts as INVITE; CANCEL is a transaction of its own).
    Rfc3261 {
        branch: String,
        sent_by: String,
        method: String,
    },
    /// RFC 2543: Request-URI, To tag, From tag, Call-ID, CSeq number and
    /// method, top Via.
    Rfc2543 { parts: String },
}

/// The branch of a message's top Via.
pub fn branch(message: &Message) -> Option<&str> {
    let top = message.header("Via")?.split(',').next()?;
    via::param(top, "branch")
}

fn sent_by(message: &Message) -> String {
    message
        .header("Via")
        .and_then(|v| v.split(',').next())
        .and_then(via::sent_by_text)
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn tag(value: Option<&str>) -> String {
    value.and_then(tag_param).unwrap_or_default().to_owned()
}

/// The key a server transaction is found by, for a request received.
pub fn server_key(request: &Message) -> Option<TransactionKey> {
    let method = request.method()?;
    let method = match method {
        Method::Ack => "INVITE".to_owned(),
        other => other.as_str().to_owned(),
    };
    match branch(request) {
        Some(b) if b.starts_with(MAGIC_COOKIE) => Some(TransactionKey::Rfc3261 {
            branch: b.to_owned(),
            sent_by: sent_by(request),
            method,
        }),
        _ => {
            let crate::sip::StartLine::Request { uri, .. } = &request.start else {
                return None;
            };
            let (number, _) = request.header("CSeq").and_then(cseq)?;
            // The To tag of an ACK is the one the server added; leave it out
            // so that the ACK matches its INVITE (RFC 3261 §17.2.3).
            let to_tag = if request.method() == Some(&Method::Ack) {
                String::new()
            } else {
                tag(request.header("To"))
            };
            let parts = [
                uri.clone(),
                to_tag,
                tag(request.header("From")),
                request.header("Call-ID").unwrap_or_default().to_owned(),
                number.to_string(),
                method,
                request
                    .header("Via")
                    .and_then(|v| v.split(',').next())
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            ]
            .join("\u{0}");
            Some(TransactionKey::Rfc2543 { parts })
        }
    }
}

/// The key of the INVITE server transaction a CANCEL cancels (RFC 3261
/// §9.2): the CANCEL's own key with the method INVITE, since a CANCEL
/// carries its INVITE's branch, Request-URI, tags, Call-ID and CSeq number.
pub fn cancelled_invite_key(cancel: &Message) -> Option<TransactionKey> {
    if cancel.method() != Some(&Method::Cancel) {
        return None;
    }
    Some(server_key(cancel)?.with_method("INVITE"))
}

impl TransactionKey {
    /// The key of the transaction of `method` with the same branch (or, for
    /// RFC 2543, the same other parts): a CANCEL's INVITE.
    pub fn with_method(self, method: &str) -> TransactionKey {
        match self {
            TransactionKey::Rfc3261 {
                branch, sent_by, ..
            } => TransactionKey::Rfc3261 {
                branch,
                sent_by,
                method: method.to_owned(),
            },
            TransactionKey::Rfc2543 { parts } => {
                let mut fields: Vec<&str> = parts.split('\u{0}').collect();
                if let Some(field) = fields.get_mut(5) {
                    *field = method;
                }
                TransactionKey::Rfc2543 {
                    parts: fields.join("\u{0}"),
                }
            }
        }
    }
}

/// The key a client transaction is found by, for a response received:
/// the top Via's branch and the CSeq method.
pub fn client_key(response: &Message) -> Option<TransactionKey> {
    let (_, method) = response.header("CSeq").and_then(cseq)?;
    Some(TransactionKey::Rfc3261 {
        branch: branch(response)?.to_owned(),
        sent_by: sent_by(response),
        method: method.as_str().to_owned(),
    })
}

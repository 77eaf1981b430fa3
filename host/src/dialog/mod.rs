//! RFC 3261 §12 dialogs, sans-IO: the dialog id (Call-ID and both tags),
//! early and confirmed states, the route set from Record-Route, the remote
//! target from Contact, both CSeq spaces, and the in-dialog requests built
//! from them (BYE, re-INVITE, UPDATE, INFO, and the ACK of a 2xx).

pub mod session_timer;

use crate::sip::{Header, Message, Method, StartLine, cseq, tag_param};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response with a To tag.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
    /// Ended by a BYE (or a failed early dialog).
    Terminated,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    #[error("the message lacks what a dialog needs: {0}")]
    Missing(&'static str),
    /// RFC 3261 §12.2.2: answer 500.
    #[error("CSeq {received} is lower than the dialog's remote sequence {current}")]
    CSeqOutOfOrder { received: u32, current: u32 },
    #[error("the message belongs to another dialog")]
    OtherDialog,
}

/// The URI of a name-addr or addr-spec: what is inside `<>`, else up to the
/// first `;` (whose parameters belong to the header, not the URI).
pub fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value.split(';').next().unwrap_or_default().trim(),
    }
}

/// A From or To value without its tag, for building requests.
fn without_tag(value: &str) -> String {
    let end = value.rfind('>').map_or(0, |e| e + 1);
    let (address, params) = value.split_at(end);
    let kept: Vec<&str> = params
        .split(';')
        .filter(|p| !p.trim().is_empty() && !p.trim().starts_with("tag="))
        .collect();
    let mut out = address.to_owned();
    for param in kept {
        out.push(';');
        out.push_str(param.trim());
    }
    out
}

/// Route entries of every `name` header (comma-separated values split), in order.
fn routes(message: &Message, name: &str) -> Vec<String> {
    message.header_items(name).map(str::to_owned).collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub id: DialogId,
    pub state: DialogState,
    /// Our side's From (UAC) or To (UAS) value, without tag.
    pub local_uri: String,
    pub remote_uri: String,
    /// Where in-dialog requests go (the peer's Contact).
    pub remote_target: String,
    /// Route headers for in-dialog requests, first hop first.
    pub route_set: Vec<String>,
    /// Last CSeq number this side used.
    pub local_cseq: u32,
    /// Last CSeq number the peer used, once it sent a request in the dialog.
    pub remote_cseq: Option<u32>,
}

fn header(message: &Message, name: &'static str) -> Result<String, DialogError> {
    message
        .header(name)
        .map(str::to_owned)
        .ok_or(DialogError::Missing(name))
}

impl Dialog {
    /// The UAC's dialog from the request it sent and a response with a To tag
    /// (RFC 3261 §12.1.2): the route set is the response's Record-Route reversed.
    pub fn from_uac(request: &Message, response: &Message) -> Result<Self, DialogError> {
        let to = header(response, "To")?;
        let from = header(request, "From")?;
        let remote_tag = tag_param(&to)
            .ok_or(DialogError::Missing("To tag"))?
            .to_owned();
        let local_tag = tag_param(&from)
            .ok_or(DialogError::Missing("From tag"))?
            .to_owned();
        let (local_cseq, _) = request
            .header("CSeq")
            .and_then(cseq)
            .ok_or(DialogError::Missing("CSeq"))?;
        let mut route_set = routes(response, "Record-Route");
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: header(request, "Call-ID")?,
                local_tag,
                remote_tag,
            },
            state: if response.status() < 200 {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            local_uri: without_tag(&from),
            remote_uri: without_tag(&header(request, "To")?),
            remote_target: uri_of(&header(response, "Contact")?).to_owned(),
            route_set,
            local_cseq,
            remote_cseq: None,
        })
    }

    /// The UAS's dialog from the request received and the To tag it answers
    /// with (RFC 3261 §12.1.1): the route set is the Record-Route in order.
    pub fn from_uas(request: &Message, local_tag: &str) -> Result<Self, DialogError> {
        let from = header(request, "From")?;
        // An RFC 2543 caller sends no From tag: its dialog's is empty (§12.1.1).
        let remote_tag = tag_param(&from).unwrap_or_default().to_owned();
        let (remote_cseq, _) = request
            .header("CSeq")
            .and_then(cseq)
            .ok_or(DialogError::Missing("CSeq"))?;
        Ok(Dialog {
            id: DialogId {
                call_id: header(request, "Call-ID")?,
                local_tag: local_tag.to_owned(),
                remote_tag,
            },
            state: DialogState::Early,
            local_uri: without_tag(&header(request, "To")?),
            remote_uri: without_tag(&from),
            remote_target: uri_of(&header(request, "Contact")?).to_owned(),
            route_set: routes(request, "Record-Route"),
            local_cseq: 0,
            remote_cseq: Some(remote_cseq),
        })
    }

    /// A later response to the dialog-creating INVITE (UAC side): a 2xx
    /// confirms the dialog, fixing its route set and target (§12.1.2, §13.2.2.4).
    pub fn handle_response(&mut self, response: &Message) {
        let code = response.status();
        if self.state == DialogState::Early && (200..300).contains(&code) {
            self.state = DialogState::Confirmed;
            let mut route_set = routes(response, "Record-Route");
            route_set.reverse();
            self.route_set = route_set;
            if let Some(contact) = response.header("Contact") {
                self.remote_target = uri_of(contact).to_owned();
            }
        }
        if self.state == DialogState::Early && code >= 300 {
            self.state = DialogState::Terminated;
        }
    }

    /// Our 2xx to the dialog-creating INVITE (UAS side).
    pub fn confirm(&mut self) {
        if self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
        }
    }

    /// The dialog id of a request received in a dialog, whichever side
    /// created it: (Call-ID, To tag = ours, From tag = theirs).
    pub fn id_of_request(request: &Message) -> Option<DialogId> {
        Some(DialogId {
            call_id: request.header("Call-ID")?.to_owned(),
            local_tag: tag_param(request.header("To")?)?.to_owned(),
            remote_tag: tag_param(request.header("From")?)?.to_owned(),
        })
    }

    /// The dialog id of a response to a request we sent.
    pub fn id_of_response(response: &Message) -> Option<DialogId> {
        Some(DialogId {
            call_id: response.header("Call-ID")?.to_owned(),
            local_tag: tag_param(response.header("From")?)?.to_owned(),
            remote_tag: tag_param(response.header("To")?)?.to_owned(),
        })
    }

    /// A request from the peer inside the dialog (§12.2.2): CSeq must not go
    /// back; a re-INVITE or UPDATE with a Contact refreshes the target; a
    /// BYE ends the dialog.
    pub fn handle_request(&mut self, request: &Message) -> Result<(), DialogError> {
        if Self::id_of_request(request).as_ref() != Some(&self.id) {
            return Err(DialogError::OtherDialog);
        }
        let (number, method) = request
            .header("CSeq")
            .and_then(cseq)
            .ok_or(DialogError::Missing("CSeq"))?;
        // ACK and CANCEL reuse the CSeq number of the request they go with.
        if !matches!(method, Method::Ack | Method::Cancel) {
            if let Some(current) = self.remote_cseq
                && number <= current
            {
                return Err(DialogError::CSeqOutOfOrder {
                    received: number,
                    current,
                });
            }
            self.remote_cseq = Some(number);
        }
        if matches!(method, Method::Invite | Method::Update)
            && let Some(contact) = request.header("Contact")
        {
            self.remote_target = uri_of(contact).to_owned();
        }
        if method == Method::Bye {
            self.state = DialogState::Terminated;
        }
        Ok(())
    }

    /// A new in-dialog request (§12.2.1.1) with the next local CSeq; `via` is
    /// the top Via the transport layer chose (with a fresh branch).
    pub fn request(&mut self, method: Method, via: &str) -> Message {
        self.local_cseq += 1;
        let number = self.local_cseq;
        self.build(method, number, via)
    }

    /// The ACK of a 2xx (§13.2.2.4): the INVITE's CSeq number, method ACK.
    pub fn ack(&self, invite_cseq: u32, via: &str) -> Message {
        self.build(Method::Ack, invite_cseq, via)
    }

    fn build(&self, method: Method, number: u32, via: &str) -> Message {
        // Loose routing when the first route has `lr`; otherwise strict
        // routing: the first route becomes the Request-URI (§12.2.1.1).
        let loose = self
            .route_set
            .first()
            .is_none_or(|r| uri_of(r).contains(";lr"));
        let (uri, route_headers): (String, Vec<String>) = if loose {
            (self.remote_target.clone(), self.route_set.clone())
        } else {
            let mut rest: Vec<String> = self.route_set[1..].to_vec();
            rest.push(format!("<{}>", self.remote_target));
            (uri_of(&self.route_set[0]).to_owned(), rest)
        };
        let h = |name: &str, value: String| Header {
            name: name.to_owned(),
            value,
        };
        let mut headers = vec![
            h("Via", via.to_owned()),
            h("Max-Forwards", "70".to_owned()),
            h(
                "To",
                format!("{};tag={}", self.remote_uri, self.id.remote_tag),
            ),
            h(
                "From",
                format!("{};tag={}", self.local_uri, self.id.local_tag),
            ),
            h("Call-ID", self.id.call_id.clone()),
            h("CSeq", format!("{number} {method}")),
        ];
        headers.extend(route_headers.into_iter().map(|r| h("Route", r)));
        headers.push(h("Content-Length", "0".to_owned()));
        Message {
            start: StartLine::Request { method, uri },
            headers,
            body: Vec::new(),
        }
    }
}

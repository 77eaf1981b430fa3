//! Session timers (RFC 4028), sans-IO: what a leg's INVITE and 2xx agree
//! on, and when the session must be refreshed or ends. A call whose far end
//! vanished without a BYE (a crashed carrier, a dead NAT binding) would
//! otherwise be billed until someone notices; with a timer, the side that is
//! not the refresher hangs up once refreshes stop.
//!
//! Plugboard refreshes a leg itself only with UPDATE (RFC 3311, no body, so
//! that no offer it did not see crosses): where that is the only way and
//! the peer does not allow UPDATE, the leg runs without a timer.

use std::time::{Duration, Instant};

use crate::sip::Message;

/// The smallest interval Plugboard accepts (RFC 4028 §5's recommended
/// minimum); below it, 422 with this as `Min-SE`.
pub const MIN_SE: u32 = 90;

/// The interval Plugboard asks a buyer for when the caller set none.
pub const DEFAULT_INTERVAL: u32 = 1800;

/// Who refreshes, in the roles of the transaction that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

/// A `Session-Expires` header field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    pub seconds: u32,
    pub refresher: Option<Refresher>,
}

/// `Session-Expires` (or its compact form `x`, which the parser expands).
pub fn session_expires(message: &Message) -> Option<SessionExpires> {
    let value = message.header("Session-Expires")?;
    let mut parts = value.split(';');
    let seconds = parts.next()?.trim().parse().ok()?;
    let refresher = parts.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("refresher") {
            return None;
        }
        match value.trim().to_ascii_lowercase().as_str() {
            "uac" => Some(Refresher::Uac),
            "uas" => Some(Refresher::Uas),
            _ => None,
        }
    });
    Some(SessionExpires { seconds, refresher })
}

/// `Min-SE`, if any.
pub fn min_se(message: &Message) -> Option<u32> {
    message
        .header("Min-SE")?
        .split(';')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether the sender supports session timers (`Supported: timer`, or
/// `Require: timer` on a response).
pub fn supports_timer(message: &Message) -> bool {
    message.lists("Supported", "timer") || message.lists("Require", "timer")
}

/// Whether the sender accepts UPDATE, by its `Allow`.
pub fn allows_update(message: &Message) -> bool {
    message.lists("Allow", "UPDATE")
}

/// What the caller leg answers an INVITE with, Plugboard being its UAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UasTimer {
    /// The interval asked for is below [`MIN_SE`]: 422.
    TooSmall,
    /// A timer: the 2xx carries `Session-Expires` (and `Require: timer`
    /// when the caller supports it).
    Agreed(SessionTimerTerms),
    /// No timer on this leg.
    Off,
}

/// What one leg agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimerTerms {
    pub seconds: u32,
    /// Plugboard sends the refreshes (UPDATE); else the peer does.
    pub we_refresh: bool,
    /// The peer supports the extension (`Require: timer` goes with the 2xx).
    pub peer_supports: bool,
}

/// RFC 4028 §9 for an INVITE Plugboard answers: the caller refreshes
/// whenever it can; Plugboard only when the caller cannot and allows UPDATE.
pub fn as_uas(invite: &Message) -> UasTimer {
    let asked = session_expires(invite);
    let supports = supports_timer(invite);
    if let Some(asked) = asked
        && asked.seconds < MIN_SE
    {
        return UasTimer::TooSmall;
    }
    let seconds = match asked {
        Some(asked) => asked.seconds,
        // The caller asked for none: one is offered if it can refresh.
        None if supports => DEFAULT_INTERVAL.max(min_se(invite).unwrap_or(0)),
        None => return UasTimer::Off,
    };
    let we_refresh = match asked.and_then(|a| a.refresher) {
        Some(Refresher::Uas) => true,
        Some(Refresher::Uac) => false,
        None => !supports,
    };
    if we_refresh && !allows_update(invite) {
        return UasTimer::Off;
    }
    UasTimer::Agreed(SessionTimerTerms {
        seconds,
        we_refresh,
        peer_supports: supports,
    })
}

/// RFC 4028 §7.2 for the 2xx of an INVITE Plugboard sent (asking the buyer
/// to refresh): none when the 2xx sets no timer, or sets one only
/// Plugboard could refresh and the buyer does not allow UPDATE.
pub fn as_uac(response: &Message) -> Option<SessionTimerTerms> {
    let agreed = session_expires(response)?;
    let supports = response.lists("Require", "timer");
    // Without `Require: timer` the UAS does not support the extension
    // (a proxy set the header), and the UAC refreshes.
    let we_refresh = !supports || agreed.refresher != Some(Refresher::Uas);
    if we_refresh && !allows_update(response) {
        return None;
    }
    Some(SessionTimerTerms {
        seconds: agreed.seconds.max(MIN_SE),
        we_refresh,
        peer_supports: supports,
    })
}

/// One leg's running timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    pub terms: SessionTimerTerms,
    refreshed_at: Instant,
}

impl SessionTimer {
    pub fn start(terms: SessionTimerTerms, now: Instant) -> Self {
        SessionTimer {
            terms,
            refreshed_at: now,
        }
    }

    /// A refresh (a 2xx to a re-INVITE or UPDATE on the leg) at `now`.
    pub fn refreshed(&mut self, now: Instant) {
        self.refreshed_at = now;
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.terms.seconds))
    }

    /// When Plugboard sends its refresh (half the interval, §10), if it is
    /// the refresher.
    pub fn refresh_at(&self) -> Option<Instant> {
        self.terms
            .we_refresh
            .then(|| self.refreshed_at + self.interval() / 2)
    }

    /// When the session is over without a refresh: for the side that waits
    /// for them, the interval less a third of it or 32 s, whichever is less
    /// (§10), so its BYE comes before the refresher gives up.
    pub fn expires_at(&self) -> Instant {
        let interval = self.interval();
        let margin = (interval / 3).min(Duration::from_secs(32));
        if self.terms.we_refresh {
            self.refreshed_at + interval
        } else {
            self.refreshed_at + interval - margin
        }
    }

    /// `Session-Expires` for a message of a transaction in which the peer
    /// is the UAC (`peer_is_uac`) or the UAS.
    pub fn header(&self, peer_is_uac: bool) -> String {
        let peer_refreshes = !self.terms.we_refresh;
        let refresher = if peer_refreshes == peer_is_uac {
            "uac"
        } else {
            "uas"
        };
        format!("{};refresher={refresher}", self.terms.seconds)
    }
}

//! Dynamic number insertion, sans-IO: which pooled number a visitor session
//! gets at `now`, and which session a call to a pooled number belongs to.

use std::collections::{BTreeSet, HashMap};

use crate::model::{DniSession, Pool, UnixSeconds};

/// What a DNI request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// The session keeps its number, for another TTL.
    Renewed(DniSession),
    /// A free pooled number, the one released longest ago.
    Assigned(DniSession),
    /// No free number: the campaign's default number, held for nobody.
    Exhausted,
}

impl Assignment {
    /// The session to store, if any.
    pub fn session(&self) -> Option<&DniSession> {
        match self {
            Assignment::Renewed(s) | Assignment::Assigned(s) => Some(s),
            Assignment::Exhausted => None,
        }
    }
}

/// A pool in memory with its numbers ordered by release time, so that the
/// least recently released number is found without scanning the pool.
#[derive(Debug, Clone)]
pub struct PoolState {
    pool: Pool,
    /// (released or expiring at, position in the pool) of every number; a
    /// number never handed out was released at the beginning of time.
    by_release: BTreeSet<(UnixSeconds, usize)>,
    position: HashMap<String, usize>,
}

impl PoolState {
    pub fn new(pool: Pool) -> Self {
        let position: HashMap<String, usize> = pool
            .numbers
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let by_release = pool
            .numbers
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    pool.holders
                        .get(n)
                        .map_or(UnixSeconds::MIN, |h| h.expires_at),
                    i,
                )
            })
            .collect();
        PoolState {
            pool,
            by_release,
            position,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

/// Decides the number for a request at `now`. `current` is the stored session
/// named by the request, if it named one that exists; `new_id` names a new one.
pub fn assign(
    state: &PoolState,
    current: Option<&DniSession>,
    session_id: Option<&str>,
    attributes: Vec<(String, String)>,
    now: UnixSeconds,
    new_id: impl FnOnce() -> String,
) -> Assignment {
    let pool = &state.pool;
    let expires_at = now + i64::from(pool.ttl_s);
    let still_holds = |s: &&DniSession| {
        s.expires_at > now && pool.holders.get(&s.number).is_some_and(|h| h.id == s.id)
    };
    if let Some(session) = current.filter(still_holds) {
        let mut renewed = session.clone();
        renewed.expires_at = expires_at;
        if !attributes.is_empty() {
            renewed.attributes = attributes;
        }
        return Assignment::Renewed(renewed);
    }
    // Least recently released first; ties go to pool order.
    let free = state
        .by_release
        .first()
        .filter(|(released, _)| *released <= now)
        .and_then(|(_, position)| pool.numbers.get(*position));
    match free {
        Some(number) => Assignment::Assigned(DniSession {
            id: session_id.map_or_else(new_id, str::to_owned),
            campaign_id: pool.campaign_id.clone(),
            number: number.clone(),
            attributes,
            assigned_at: now,
            expires_at,
        }),
        None => Assignment::Exhausted,
    }
}

/// Records an assignment in the pool: the new holder, or one more exhaustion.
pub fn apply(state: &mut PoolState, assignment: &Assignment) {
    let Some(session) = assignment.session() else {
        state.pool.exhausted_count += 1;
        return;
    };
    let Some(&position) = state.position.get(&session.number) else {
        return;
    };
    let previous = state
        .pool
        .holders
        .get(&session.number)
        .map_or(UnixSeconds::MIN, |h| h.expires_at);
    state.by_release.remove(&(previous, position));
    state.by_release.insert((session.expires_at, position));
    state
        .pool
        .holders
        .insert(session.number.clone(), session.clone());
}

/// The session that held `number` at `at`, among `sessions`: a call's attribution.
pub fn session_at<'a>(
    sessions: impl IntoIterator<Item = &'a DniSession>,
    number: &str,
    at: UnixSeconds,
) -> Option<&'a DniSession> {
    sessions
        .into_iter()
        .filter(|s| s.number == number && s.assigned_at <= at && at < s.expires_at)
        .max_by_key(|s| s.assigned_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(numbers: &[&str]) -> PoolState {
        PoolState::new(Pool {
            campaign_id: "cmp".into(),
            numbers: numbers.iter().map(|n| (*n).to_owned()).collect(),
            ttl_s: 1800,
            exhausted_count: 0,
            holders: Default::default(),
        })
    }

    /// Runs one request against `pool` and records its outcome there.
    fn request(pool: &mut PoolState, id: Option<&str>, now: UnixSeconds) -> Assignment {
        let current = id
            .and_then(|id| pool.pool().holders.values().find(|s| s.id == id))
            .cloned();
        let fresh = format!("s{now}");
        let a = assign(pool, current.as_ref(), id, vec![], now, || fresh);
        apply(pool, &a);
        a
    }

    fn number(a: &Assignment) -> &str {
        &a.session().expect("a pooled number").number
    }

    #[test]
    fn a_new_session_gets_a_number_for_the_ttl() {
        let mut p = pool(&["+1"]);
        let a = request(&mut p, None, 100);
        let s = a.session().expect("assigned");
        assert_eq!(
            (s.id.as_str(), s.number.as_str(), s.expires_at),
            ("s100", "+1", 1900)
        );
    }

    #[test]
    fn the_same_session_renews_its_number() {
        let mut p = pool(&["+1", "+2"]);
        let first = request(&mut p, None, 100)
            .session()
            .cloned()
            .expect("assigned");
        let again = request(&mut p, Some(&first.id), 1000);
        assert_eq!(
            again,
            Assignment::Renewed(DniSession {
                expires_at: 2800,
                ..first
            })
        );
    }

    #[test]
    fn the_least_recently_released_number_is_reused_first() {
        let mut p = pool(&["+1", "+2", "+3"]);
        request(&mut p, None, 0);
        request(&mut p, None, 10);
        request(&mut p, None, 5);
        // +1 released at 1800, +2 at 1810, +3 at 1805.
        let next = request(&mut p, None, 5000);
        assert_eq!(number(&next), "+1");
        let after = request(&mut p, None, 5001);
        assert_eq!(number(&after), "+3");
    }

    #[test]
    fn a_full_pool_is_exhausted_until_a_session_expires() {
        let mut p = pool(&["+1"]);
        request(&mut p, None, 0);
        assert_eq!(request(&mut p, None, 10), Assignment::Exhausted);
        assert_eq!(p.pool().exhausted_count, 1);
        assert_eq!(number(&request(&mut p, None, 1800)), "+1");
    }

    #[test]
    fn an_expired_session_asking_again_gets_a_new_assignment() {
        let mut p = pool(&["+1", "+2"]);
        let first = request(&mut p, None, 0)
            .session()
            .cloned()
            .expect("assigned");
        let again = request(&mut p, Some(&first.id), 4000);
        assert!(matches!(again, Assignment::Assigned(_)), "{again:?}");
    }

    #[test]
    fn a_call_is_attributed_to_the_session_holding_the_number_then() {
        let mut p = pool(&["+1"]);
        let a = request(&mut p, None, 0).session().cloned().expect("a");
        let b = request(&mut p, None, 2000).session().cloned().expect("b");
        let sessions = [a, b];
        assert_eq!(
            session_at(&sessions, "+1", 100).map(|s| s.id.as_str()),
            Some("s0")
        );
        assert_eq!(session_at(&sessions, "+1", 1900), None);
        assert_eq!(
            session_at(&sessions, "+1", 2100).map(|s| s.id.as_str()),
            Some("s2000")
        );
    }
}

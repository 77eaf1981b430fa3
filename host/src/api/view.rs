//! What each role sees of a call record: one table, [`RULES`], applied to
//! the record's JSON form by every route that shows a call.
//!
//! The table is an allow-list. A field it does not name — one added to the
//! record later, at any depth — is shown to the operator and to no one else
//! until a row says otherwise. `docs/visibility.md` holds the same table,
//! rendered by [`table_markdown`] and checked by a test.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::model::{CallRecord, Role};

/// Who reads a call record.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    pub tenant_id: &'a str,
    pub role: Role,
}

/// What a role sees of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    No,
    Yes,
    /// Entries whose `tenant_id` is the reader's (its bids, legs, policies).
    Own,
    /// Only on calls the reader won (its target answered).
    IfWon,
    /// Attribution pairs whose key the campaign shares with bidders.
    SharedKey,
    /// Bid ids of the reader's own bids.
    OwnBidId,
    /// Only on legs with no bidder's target behind them (the campaign's fallback).
    FallbackOnly,
}

impl Shown {
    fn words(self) -> &'static str {
        match self {
            Shown::No => "—",
            Shown::Yes => "yes",
            Shown::Own => "its own only",
            Shown::IfWon => "if it won the call",
            Shown::SharedKey => "the campaign's shared keys only",
            Shown::OwnBidId => "its own bids only",
            Shown::FallbackOnly => "the campaign's fallback only",
        }
    }
}

/// One field of the record's JSON form: `a.b` is field `b` of object `a`,
/// `a[]` an element of array `a`, `a.*` any member of map `a` (an object
/// whose names are data, not ours: attribution). An opaque field is shown whole (its
/// content is the guest's or the visitor's, with no structure of ours).
pub struct Rule {
    pub path: &'static str,
    pub marketer: Shown,
    pub bidder: Shown,
    pub opaque: bool,
}

const fn rule(path: &'static str, marketer: Shown, bidder: Shown) -> Rule {
    Rule {
        path,
        marketer,
        bidder,
        opaque: false,
    }
}

const fn opaque(path: &'static str, marketer: Shown, bidder: Shown) -> Rule {
    Rule {
        path,
        marketer,
        bidder,
        opaque: true,
    }
}

use Shown::{FallbackOnly, IfWon, No, Own, OwnBidId, SharedKey, Yes};

/// The table. The marketer is the campaign's; a bidder reads a call only if
/// one of its targets was rung for it (or skipped at that moment, full or
/// paused) — see [`may_see_call`].
pub const RULES: &[Rule] = &[
    rule("id", Yes, Yes),
    rule("campaign_id", Yes, Yes),
    rule("tenant_id", Yes, No),
    rule("caller", Yes, IfWon),
    rule("called", Yes, No),
    rule("outcome", Yes, Yes),
    rule("quality", Yes, Yes),
    rule("winner", Yes, IfWon),
    rule("winner.bid_id", Yes, Yes),
    rule("winner.bidder_id", Yes, Yes),
    rule("winner.tenant_id", No, Yes),
    rule("winner.target_id", Yes, Yes),
    rule("winner.amount_micros", Yes, Yes),
    rule("received_at_ms", Yes, Yes),
    rule("routed_at_ms", Yes, Yes),
    rule("answered_at_ms", Yes, IfWon),
    rule("ended_at_ms", Yes, Yes),
    rule("duration_s", Yes, IfWon),
    rule("billable", Yes, IfWon),
    rule("payout_micros", Yes, IfWon),
    opaque("inputs", Yes, No),
    rule("trace", Yes, Yes),
    rule("trace.tags", Yes, Yes),
    rule("trace.tags[]", Yes, Yes),
    rule("trace.policies", Yes, Yes),
    rule("trace.policies[]", Own, Own),
    rule("trace.policies[].policy_id", Yes, Yes),
    rule("trace.policies[].version", Yes, Yes),
    rule("trace.policies[].role", Yes, Yes),
    rule("trace.policies[].outcome", Yes, Yes),
    rule("trace.policies[].error", Yes, Yes),
    opaque("trace.policies[].result", Yes, Yes),
    rule("trace.policies[].fuel_used", Yes, Yes),
    rule("trace.policies[].elapsed_us", Yes, Yes),
    opaque("trace.policies[].logs", Yes, Yes),
    rule("trace.policies[].logs_dropped", Yes, Yes),
    rule("trace.policies[].tenant_id", Yes, Yes),
    rule("trace.bids", Yes, Yes),
    rule("trace.bids[]", Yes, Own),
    rule("trace.bids[].bid_id", Yes, Yes),
    rule("trace.bids[].bidder_id", Yes, Yes),
    rule("trace.bids[].tenant_id", No, Yes),
    rule("trace.bids[].target_id", Yes, Yes),
    rule("trace.bids[].amount_micros", Yes, Yes),
    rule("trace.bids[].min_quality", Yes, Yes),
    rule("trace.bids[].min_duration_s", Yes, Yes),
    rule("trace.bids[].source", Yes, Yes),
    rule("trace.bids[].status", Yes, Yes),
    rule("trace.bids[].reason", Yes, Yes),
    rule("trace.bids_omitted", Yes, No),
    rule("trace.ring_order", Yes, Yes),
    rule("trace.ring_order[]", Yes, OwnBidId),
    rule("trace.legs", Yes, Yes),
    rule("trace.legs[]", Yes, Own),
    rule("trace.legs[].target_id", Yes, Yes),
    rule("trace.legs[].tenant_id", No, Yes),
    rule("trace.legs[].uri", FallbackOnly, Yes),
    rule("trace.legs[].final_status", Yes, Yes),
    rule("trace.legs[].result", Yes, Yes),
    rule("trace.legs[].started_at_ms", Yes, Yes),
    rule("trace.legs[].ended_at_ms", Yes, Yes),
    rule("trace.legs[].other_forks_answered", Yes, Yes),
    rule("trace.attribution", Yes, Yes),
    opaque("trace.attribution.*", Yes, SharedKey),
    rule("trace.target_events", No, Yes),
    rule("trace.target_events[]", No, Own),
    rule("trace.target_events[].target_id", No, Yes),
    rule("trace.target_events[].tenant_id", No, Yes),
    rule("trace.target_events[].event", No, Yes),
    rule("trace.target_events[].until", No, Yes),
    rule("trace.target_events[].reason", No, Yes),
    rule("trace.ended_by", Yes, IfWon),
];

fn rule_for(path: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.path == path)
}

/// Whether `viewer` may read the call at all: the operator every call, a
/// marketer its campaigns' calls, a bidder the calls that reached its
/// targets (it won them, or one of its targets had a leg).
pub fn may_see_call(viewer: &Viewer, record: &CallRecord) -> bool {
    match viewer.role {
        Role::Operator => true,
        Role::Marketer => record.tenant_id == viewer.tenant_id,
        Role::Bidder => {
            let won = record
                .winner
                .as_ref()
                .is_some_and(|w| w.tenant_id == viewer.tenant_id);
            won || record
                .trace
                .legs
                .iter()
                .any(|leg| leg.tenant_id.as_deref() == Some(viewer.tenant_id))
        }
    }
}

/// What the conditions of the table are evaluated against.
struct Context<'a> {
    viewer: Viewer<'a>,
    won: bool,
    own_bid_ids: HashSet<String>,
    shared_keys: &'a [String],
}

/// The record as `viewer` may see it, as JSON; `shared_keys` are the
/// attribution keys the campaign shares with bidders. Call only after
/// [`may_see_call`] said yes.
pub fn call_view(viewer: &Viewer, record: &CallRecord, shared_keys: &[String]) -> Value {
    let mut value = serde_json::to_value(record).unwrap_or(Value::Null);
    if viewer.role == Role::Operator {
        return value;
    }
    let context = Context {
        viewer: *viewer,
        won: record
            .winner
            .as_ref()
            .is_some_and(|w| w.tenant_id == viewer.tenant_id),
        own_bid_ids: record
            .trace
            .bids
            .iter()
            .filter(|b| b.tenant_id == viewer.tenant_id)
            .map(|b| b.bid_id.clone())
            .collect(),
        shared_keys,
    };
    filter_value(&mut value, "", &context);
    value
}

fn shown_for(rule: &Rule, role: Role) -> Shown {
    match role {
        Role::Operator => Yes,
        Role::Marketer => rule.marketer,
        Role::Bidder => rule.bidder,
    }
}

/// Whether a value passes its rule; `parent` is the object holding it and
/// `name` its name there.
fn passes(
    shown: Shown,
    value: &Value,
    parent: Option<(&Map<String, Value>, &str)>,
    cx: &Context,
) -> bool {
    match shown {
        No => false,
        Yes => true,
        Own => value.get("tenant_id").and_then(Value::as_str) == Some(cx.viewer.tenant_id),
        IfWon => cx.won,
        SharedKey => parent.is_some_and(|(_, name)| cx.shared_keys.iter().any(|k| k == name)),
        OwnBidId => value.as_str().is_some_and(|id| cx.own_bid_ids.contains(id)),
        FallbackOnly => parent.is_some_and(|(p, _)| p.get("target_id").is_none_or(Value::is_null)),
    }
}

fn filter_value(value: &mut Value, path: &str, cx: &Context) {
    match value {
        Value::Object(map) => {
            let verdicts: Vec<(String, bool)> = map
                .iter()
                .map(|(key, child)| {
                    let keep = member_rule(path, key).is_some_and(|rule| {
                        passes(shown_for(rule, cx.viewer.role), child, Some((map, key)), cx)
                    });
                    (key.clone(), keep)
                })
                .collect();
            for (key, keep) in verdicts {
                if !keep {
                    map.remove(&key);
                    continue;
                }
                let child_path = child_path(path, &key);
                if member_rule(path, &key).is_some_and(|r| !r.opaque)
                    && let Some(child) = map.get_mut(&key)
                {
                    filter_value(child, &child_path, cx);
                }
            }
        }
        Value::Array(items) => {
            let element_path = format!("{path}[]");
            let Some(rule) = rule_for(&element_path) else {
                items.clear();
                return;
            };
            let shown = shown_for(rule, cx.viewer.role);
            items.retain(|item| passes(shown, item, None, cx));
            if !rule.opaque {
                for item in items.iter_mut() {
                    filter_value(item, &element_path, cx);
                }
            }
        }
        _ => {}
    }
}

/// The rule of member `key` of the object at `path`: its own row, or the
/// row of any member of that map.
fn member_rule(path: &str, key: &str) -> Option<&'static Rule> {
    rule_for(&child_path(path, key)).or_else(|| rule_for(&child_path(path, "*")))
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The table as Markdown, for `docs/visibility.md`.
pub fn table_markdown() -> String {
    let mut out = String::from("| field | marketer | bidder |\n|---|---|---|\n");
    for rule in RULES {
        let note = if rule.opaque { " (whole)" } else { "" };
        out.push_str(&format!(
            "| `{}`{note} | {} | {} |\n",
            rule.path,
            rule.marketer.words(),
            rule.bidder.words()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BidTrace, CallOutcome, DecisionTrace, LegTrace, Winner};

    fn record() -> CallRecord {
        CallRecord {
            id: "call".into(),
            campaign_id: "cmp".into(),
            tenant_id: "m".into(),
            caller: "+14155550123".into(),
            called: "+18005550100".into(),
            outcome: CallOutcome::Answered,
            quality: Some(70),
            winner: Some(Winner {
                bid_id: "bid_b".into(),
                bidder_id: "bdr_b".into(),
                tenant_id: "b".into(),
                target_id: "tgt_b".into(),
                amount_micros: 1,
            }),
            received_at_ms: 0,
            routed_at_ms: Some(1),
            answered_at_ms: Some(2),
            ended_at_ms: Some(3),
            duration_s: 100,
            billable: true,
            payout_micros: 1,
            trace: DecisionTrace {
                bids: vec![BidTrace {
                    bid_id: "bid_b".into(),
                    bidder_id: "bdr_b".into(),
                    tenant_id: "b".into(),
                    target_id: "tgt_b".into(),
                    amount_micros: 1,
                    min_quality: 0,
                    min_duration_s: 0,
                    source: "static".into(),
                    status: "won".into(),
                    reason: None,
                }],
                legs: vec![LegTrace {
                    target_id: Some("tgt_b".into()),
                    tenant_id: Some("b".into()),
                    uri: "sip:b@192.0.2.1".into(),
                    final_status: Some(200),
                    result: "answered".into(),
                    started_at_ms: 1,
                    ended_at_ms: Some(3),
                    other_forks_answered: 0,
                }],
                ..DecisionTrace::default()
            },
            inputs: Some(crate::model::PolicyInputs::default()),
        }
    }

    /// Every path of `value` holding a scalar, `[]` for array elements.
    fn leaves(value: &Value, path: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    leaves(child, child_path(&path, key), out);
                }
            }
            Value::Array(items) => {
                for item in items {
                    leaves(item, format!("{path}[]"), out);
                }
            }
            _ => out.push(path),
        }
    }

    #[test]
    fn a_field_no_row_names_is_shown_to_the_operator_alone_at_any_depth() {
        let record = record();
        let mut value = serde_json::to_value(&record).expect("json");
        value["added_later"] = Value::from("secret");
        value["trace"]["added_later"] = Value::from("secret");
        value["trace"]["bids"][0]["added_later"] = Value::from("secret");
        value["trace"]["legs"][0]["added_later"] = Value::from("secret");
        value["winner"]["added_later"] = Value::from("secret");
        for (tenant_id, role) in [("m", Role::Marketer), ("b", Role::Bidder)] {
            let cx = Context {
                viewer: Viewer { tenant_id, role },
                won: tenant_id == "b",
                own_bid_ids: HashSet::from(["bid_b".to_owned()]),
                shared_keys: &[],
            };
            let mut shown = value.clone();
            filter_value(&mut shown, "", &cx);
            let mut seen = Vec::new();
            leaves(&shown, String::new(), &mut seen);
            assert!(
                !seen.iter().any(|p| p.ends_with("added_later")),
                "{role:?} sees {seen:?}"
            );
            assert!(seen.contains(&"trace.bids[].amount_micros".to_owned()));
        }
    }

    #[test]
    fn a_bidder_sees_the_attribution_the_campaign_shares_and_a_marketer_all_of_it() {
        let mut record = record();
        record.trace.attribution = vec![
            ("utm_source".into(), "google".into()),
            ("gclid".into(), "secret-click".into()),
        ];
        let shared = ["utm_source".to_owned()];
        let seen = |tenant_id, role| {
            call_view(&Viewer { tenant_id, role }, &record, &shared)["trace"]["attribution"]
                .to_string()
        };
        assert_eq!(seen("b", Role::Bidder), r#"{"utm_source":"google"}"#);
        assert_eq!(
            seen("m", Role::Marketer),
            r#"{"gclid":"secret-click","utm_source":"google"}"#
        );
    }

    #[test]
    fn every_row_names_a_field_of_the_record() {
        let mut record = record();
        record.trace.tags = vec!["t".into()];
        record.trace.ring_order = vec!["bid_b".into()];
        record.trace.attribution = vec![("k".into(), "v".into())];
        record.trace.policies = vec![crate::model::PolicyTrace {
            policy_id: "p".into(),
            version: "v".into(),
            role: "active".into(),
            outcome: "ok".into(),
            error: Some("e".into()),
            result: Some(serde_json::json!({"score": 1})),
            fuel_used: 1,
            elapsed_us: 1,
            logs: vec![crate::model::GuestLog {
                level: crate::model::LogLevel::Info,
                message: "m".into(),
                fields: Vec::new(),
            }],
            logs_dropped: 1,
            tenant_id: "m".into(),
        }];
        record.trace.target_events = vec![crate::model::TargetEventTrace {
            target_id: "tgt_b".into(),
            tenant_id: "b".into(),
            event: "paused".into(),
            until: Some(1),
            reason: Some("r".into()),
        }];
        let value = serde_json::to_value(&record).expect("json");
        let mut paths = Vec::new();
        leaves(&value, String::new(), &mut paths);
        for rule in RULES {
            let named = paths.iter().any(|p| {
                p == rule.path
                    || p.starts_with(&format!("{}.", rule.path))
                    || p.starts_with(&format!("{}[]", rule.path))
                    || (rule.path.strip_suffix(".*"))
                        .is_some_and(|map| p.starts_with(&format!("{map}.")))
            });
            assert!(named, "{} names no field", rule.path);
        }
    }
}

//! Process metrics in the Prometheus text format: labelled counters and
//! histograms, kept in memory and rendered on `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of histogram buckets, in seconds: 10 µs to 1 s, finest
/// around the 2 ms post-dial delay budget.
const BUCKETS: [f64; 16] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.0025,
    0.005, 0.01, 0.05, 0.25, 1.0,
];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Families {
    counters: BTreeMap<&'static str, BTreeMap<Labels, u64>>,
    gauges: BTreeMap<&'static str, BTreeMap<Labels, i64>>,
    histograms: BTreeMap<&'static str, BTreeMap<Labels, Histogram>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A metric family: its name (Prometheus conventions), kind, help line, and
/// the label sets known in advance, which are shown at zero from the start
/// so that a dashboard or an alert on a rate has a series before the first
/// event.
struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    zero: &'static [&'static [(&'static str, &'static str)]],
}

const fn family(name: &'static str, kind: Kind, help: &'static str) -> Family {
    Family {
        name,
        kind,
        help,
        zero: &[],
    }
}

/// Every metric the host emits; `/metrics` lists each, with its help line,
/// even before its first sample.
const FAMILIES: &[Family] = &[
    Family {
        zero: &[
            &[("outcome", "answered")],
            &[("outcome", "no_answer")],
            &[("outcome", "abandoned")],
            &[("outcome", "rejected")],
            &[("outcome", "failed")],
        ],
        ..family(
            "plugboard_calls_total",
            Kind::Counter,
            "Finished calls by outcome.",
        )
    },
    Family {
        zero: &[&[]],
        ..family("plugboard_active_calls", Kind::Gauge, "Calls in progress.")
    },
    Family {
        zero: &[&[]],
        ..family(
            "plugboard_policy_worker_calls",
            Kind::Gauge,
            "Calls being scored or auctioned on the policy worker's thread.",
        )
    },
    family(
        "plugboard_post_dial_delay_seconds",
        Kind::Histogram,
        "Time from the inbound INVITE to the first outbound INVITE.",
    ),
    family(
        "plugboard_auction_seconds",
        Kind::Histogram,
        "Auction latency, from its request to the ring tree.",
    ),
    Family {
        zero: &[&[("reason", "untrusted")], &[("reason", "rate")]],
        ..family(
            "plugboard_sip_refused_total",
            Kind::Counter,
            "New calls refused by source: not a trusted address, or over its INVITE rate.",
        )
    },
    Family {
        zero: &[&[("listener", "sip_tcp")], &[("listener", "sip_tls")]],
        ..family(
            "plugboard_connections_refused_total",
            Kind::Counter,
            "SIP connections refused for being over the listener's limit.",
        )
    },
    family(
        "plugboard_policy_invocations_total",
        Kind::Counter,
        "Policy invocations by policy, version, source and outcome.",
    ),
    family(
        "plugboard_policy_demotions_total",
        Kind::Counter,
        "Canary and shadow versions taken out of their deployment for failing, by policy, version and role.",
    ),
    family(
        "plugboard_policy_invocation_seconds",
        Kind::Histogram,
        "Policy invocation latency by policy, version and source.",
    ),
    Family {
        zero: &[
            &[("world", "scorer"), ("result", "ok")],
            &[("world", "scorer"), ("result", "rejected")],
            &[("world", "bidder"), ("result", "ok")],
            &[("world", "bidder"), ("result", "rejected")],
            &[("world", "selector"), ("result", "ok")],
            &[("world", "selector"), ("result", "rejected")],
        ],
        ..family(
            "plugboard_policy_uploads_total",
            Kind::Counter,
            "Policy uploads by world and result.",
        )
    },
    family(
        "plugboard_policy_deployment_active",
        Kind::Gauge,
        "1 for the version serving a policy's calls.",
    ),
    family(
        "plugboard_policy_deployment_canary_percent",
        Kind::Gauge,
        "Share of calls a canary version takes.",
    ),
    family(
        "plugboard_policy_deployment_shadow",
        Kind::Gauge,
        "1 for a version running in shadow.",
    ),
    Family {
        zero: &[
            &[("result", "assigned")],
            &[("result", "renewed")],
            &[("result", "exhausted")],
        ],
        ..family(
            "plugboard_dni_assignments_total",
            Kind::Counter,
            "DNI requests by result (assigned, renewed, exhausted).",
        )
    },
    family(
        "plugboard_http_requests_total",
        Kind::Counter,
        "HTTP API requests by method, route (the path template) and status.",
    ),
    family(
        "plugboard_target_pauses_total",
        Kind::Counter,
        "Targets paused after missing calls in a row, by target.",
    ),
    family(
        "plugboard_target_resumptions_total",
        Kind::Counter,
        "Paused targets that took calls again, by target.",
    ),
    Family {
        zero: &[&[]],
        ..family(
            "plugboard_targets_paused",
            Kind::Gauge,
            "Targets paused now (as of the last recorded call).",
        )
    },
    family(
        "plugboard_rtb_answers_total",
        Kind::Counter,
        "Real-time bid answers by bidder and result (bid, declined, late, malformed, error).",
    ),
];

fn help(name: &str) -> &'static str {
    FAMILIES
        .iter()
        .find(|f| f.name == name)
        .map_or("", |f| f.help)
}

#[derive(Default)]
pub struct Metrics {
    families: Mutex<Families>,
}

impl Metrics {
    /// The metrics with every known series at zero.
    pub fn new() -> Self {
        let metrics = Self::default();
        metrics.with(|f| {
            for family in FAMILIES {
                for labels in family.zero {
                    let labels: Labels =
                        labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
                    match family.kind {
                        Kind::Counter => {
                            f.counters.entry(family.name).or_default().insert(labels, 0);
                        }
                        Kind::Gauge => {
                            f.gauges.entry(family.name).or_default().insert(labels, 0);
                        }
                        Kind::Histogram => {
                            f.histograms
                                .entry(family.name)
                                .or_default()
                                .entry(labels)
                                .or_default();
                        }
                    }
                }
            }
        });
        metrics
    }

    fn with<R>(&self, f: impl FnOnce(&mut Families) -> R) -> R {
        f(&mut self.families.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn inc(&self, name: &'static str, labels: Labels) {
        self.with(|f| {
            *f.counters
                .entry(name)
                .or_default()
                .entry(labels)
                .or_default() += 1
        });
    }

    pub fn set_gauge(&self, name: &'static str, labels: Labels, value: i64) {
        self.with(|f| {
            f.gauges.entry(name).or_default().insert(labels, value);
        });
    }

    /// Forgets every series of a gauge family (before setting it anew).
    pub fn clear_gauges(&self, name: &'static str) {
        self.with(|f| {
            f.gauges.remove(name);
        });
    }

    pub fn observe(&self, name: &'static str, labels: Labels, value: Duration) {
        let seconds = value.as_secs_f64();
        self.with(|f| {
            let histogram = f
                .histograms
                .entry(name)
                .or_default()
                .entry(labels)
                .or_default();
            for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter_mut()) {
                if seconds <= *bound {
                    *count += 1;
                }
            }
            histogram.count += 1;
            histogram.sum += seconds;
        });
    }

    /// One policy invocation: counted by outcome, timed by version.
    pub fn policy_invocation(
        &self,
        policy: &str,
        version: &str,
        source: &str,
        outcome: &str,
        elapsed: Duration,
    ) {
        let series = vec![
            ("policy", policy.to_owned()),
            ("version", version.to_owned()),
            ("source", source.to_owned()),
        ];
        let mut counted = series.clone();
        counted.push(("outcome", outcome.to_owned()));
        self.inc("plugboard_policy_invocations_total", counted);
        self.observe("plugboard_policy_invocation_seconds", series, elapsed);
    }

    /// The counter's value, for tests and for the API's own figures.
    pub fn counter(&self, name: &'static str, labels: &Labels) -> u64 {
        self.with(|f| {
            f.counters
                .get(name)
                .and_then(|c| c.get(labels))
                .copied()
                .unwrap_or(0)
        })
    }

    pub fn render(&self) -> String {
        self.render_named(&|_, _| None)
    }

    /// As [`Metrics::render`], with `{label}_name` beside each opaque-id
    /// label (`policy`, `bidder`, `target`) that `name_of(label, id)` names: the
    /// names are read when scraped, so a rename shows at once and the call
    /// path never looks one up.
    pub fn render_named(&self, name_of: &dyn Fn(&str, &str) -> Option<String>) -> String {
        self.with(|f| {
            let mut out = String::new();
            for family in FAMILIES {
                let kind = match family.kind {
                    Kind::Counter if !f.counters.contains_key(family.name) => "counter",
                    Kind::Gauge if !f.gauges.contains_key(family.name) => "gauge",
                    Kind::Histogram if !f.histograms.contains_key(family.name) => "histogram",
                    _ => continue,
                };
                let _ = writeln!(
                    out,
                    "# HELP {0} {1}\n# TYPE {0} {kind}",
                    family.name, family.help
                );
            }
            for (name, series) in &f.counters {
                let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} counter", help(name));
                for (labels, value) in series {
                    let _ = writeln!(
                        out,
                        "{name}{} {value}",
                        render_labels(labels, None, name_of)
                    );
                }
            }
            for (name, series) in &f.gauges {
                let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} gauge", help(name));
                for (labels, value) in series {
                    let _ = writeln!(
                        out,
                        "{name}{} {value}",
                        render_labels(labels, None, name_of)
                    );
                }
            }
            for (name, series) in &f.histograms {
                let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} histogram", help(name));
                for (labels, h) in series {
                    for (bound, count) in BUCKETS.iter().zip(h.counts.iter()) {
                        let le = render_labels(labels, Some(&bound.to_string()), name_of);
                        let _ = writeln!(out, "{name}_bucket{le} {count}");
                    }
                    let inf = render_labels(labels, Some("+Inf"), name_of);
                    let _ = writeln!(out, "{name}_bucket{inf} {}", h.count);
                    let plain = render_labels(labels, None, name_of);
                    let _ = writeln!(out, "{name}_sum{plain} {}", h.sum);
                    let _ = writeln!(out, "{name}_count{plain} {}", h.count);
                }
            }
            out
        })
    }
}

fn render_labels(
    labels: &Labels,
    le: Option<&str>,
    name_of: &dyn Fn(&str, &str) -> Option<String>,
) -> String {
    let escape = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let mut parts: Vec<String> = Vec::with_capacity(labels.len() + 2);
    for (k, v) in labels {
        parts.push(format!("{k}=\"{}\"", escape(v)));
        if let Some(name) = name_of(k, v) {
            parts.push(format!("{k}_name=\"{}\"", escape(&name)));
        }
    }
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        return String::new();
    }
    format!("{{{}}}", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms_in_prometheus_text() {
        let m = Metrics::new();
        m.inc(
            "plugboard_policy_uploads_total",
            vec![("world", "scorer".into()), ("result", "ok".into())],
        );
        m.observe(
            "plugboard_policy_invocation_seconds",
            vec![("policy", "p1".into())],
            Duration::from_micros(30),
        );
        let text = m.render();
        assert!(
            text.contains("plugboard_policy_uploads_total{world=\"scorer\",result=\"ok\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "plugboard_policy_invocation_seconds_bucket{policy=\"p1\",le=\"0.00005\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "plugboard_policy_invocation_seconds_bucket{policy=\"p1\",le=\"0.000025\"} 0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("plugboard_policy_invocation_seconds_count{policy=\"p1\"} 1\n"),
            "{text}"
        );
    }
}

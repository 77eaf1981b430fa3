//! A scorer that rates a call from what predicts a sale in pay-per-call:
//! where the caller is, when they call, whether they called before, how they
//! found the number, and whether the carrier verified the caller id.

use guest_sdk::{Call, CallerHistory, Quality, Scorer};

/// Score of a call with nothing for or against it.
const BASE: i32 = 50;
/// A caller seen again within this many seconds is likely a duplicate.
const DUPLICATE_WINDOW_S: i64 = 24 * 3600;
/// Attribution sources that are paid traffic (intent is usually higher).
const PAID_SOURCES: &[&str] = &["google-ads", "bing-ads", "facebook-ads", "tv", "radio"];
/// NANP codes that are not geographic: toll-free and premium-rate numbers
/// calling in are usually call centres or robocallers.
const NON_GEOGRAPHIC: &[&str] = &["800", "833", "844", "855", "866", "877", "888", "900"];

pub struct GeoHistoryScorer;

impl Scorer for GeoHistoryScorer {
    fn score(call: &Call, host: &impl CallerHistory) -> Result<Quality, String> {
        let mut score = BASE;
        let mut tags: Vec<&'static str> = Vec::new();
        let mut adjust = |delta: i32, tag: &'static str| {
            score += delta;
            tags.push(tag);
        };

        if !call.caller.starts_with('+') {
            adjust(-30, "anonymous");
        }
        let geo = &call.caller_geography;
        if NON_GEOGRAPHIC.contains(&geo.area_code.as_str()) {
            adjust(-25, "non-geographic-caller");
        } else if geo.region.is_empty() {
            adjust(-15, "unknown-geography");
        }

        let weekday = call.time.local_weekday < 5;
        match call.time.local_hour {
            8..=19 if weekday => adjust(15, "business-hours"),
            8..=19 => adjust(5, "weekend-daytime"),
            22..=23 | 0..=5 => adjust(-15, "night"),
            _ => {}
        }

        let history = host.caller_history();
        let since_last = history
            .last_seen_unix_seconds
            .map(|last| call.time.unix_seconds.saturating_sub(last));
        match since_last {
            None => adjust(10, "first-call"),
            Some(age) if age < DUPLICATE_WINDOW_S => adjust(-25, "repeat-24h"),
            Some(_) => adjust(-5, "repeat-caller"),
        }
        if history.conversions > 0 {
            adjust(-10, "converted-before");
        }

        if call
            .attribute("source")
            .is_some_and(|source| PAID_SOURCES.contains(&source))
        {
            adjust(10, "paid-traffic");
        }
        if call.attribute("keyword").is_some_and(|k| !k.is_empty()) {
            adjust(5, "keyword");
        }

        match caller_verification(call) {
            Some(true) => adjust(10, "verified-caller"),
            Some(false) => adjust(-30, "spoof-suspect"),
            None => {}
        }

        let score = score.clamp(0, 100);
        let joined = tags.join(",");
        let score_text = score.to_string();
        host.info(
            "scored",
            &[
                ("score", &score_text),
                ("tags", &joined),
                ("region", &geo.region),
            ],
        );
        let score = u8::try_from(score).map_err(|_| "score out of range".to_owned())?;
        Ok(Quality {
            score,
            tags: tags.into_iter().map(String::from).collect(),
        })
    }
}

/// STIR/SHAKEN result as terminating carriers pass it on (RFC 8224 `verstat`
/// in the From or P-Asserted-Identity URI): `Some(true)` passed, `Some(false)`
/// failed, `None` not present.
fn caller_verification(call: &Call) -> Option<bool> {
    let verstat = ["P-Asserted-Identity", "From"]
        .iter()
        .filter_map(|name| call.header(name))
        .find_map(|value| {
            let start = value.find("verstat=")? + "verstat=".len();
            let rest = &value[start..];
            let end = rest.find([';', '>', '@', ' ', ',']).unwrap_or(rest.len());
            Some(&rest[..end])
        })?;
    match verstat {
        "TN-Validation-Passed" => Some(true),
        "TN-Validation-Failed" => Some(false),
        _ => None,
    }
}

#[cfg(feature = "export")]
guest_sdk::export_scorer!(GeoHistoryScorer);

#[cfg(test)]
mod tests {
    use super::*;
    use guest_sdk::testing::TestHost;
    use guest_sdk::{Attribute, CallTime, Geography, Header, History};

    fn weekday_call() -> Call {
        Call {
            id: "c1".into(),
            campaign_id: "solar".into(),
            caller: "+14155550123".into(),
            called: "+18005550100".into(),
            caller_geography: Geography {
                country: "US".into(),
                area_code: "415".into(),
                region: "CA".into(),
                time_zone: "America/Los_Angeles".into(),
            },
            time: CallTime {
                unix_seconds: 1_790_000_000,
                local_weekday: 1,
                local_hour: 10,
                local_minute: 30,
            },
            ..Call::default()
        }
    }

    fn score(call: &Call, history: History) -> Quality {
        GeoHistoryScorer::score(call, &TestHost::with_history(history)).unwrap()
    }

    #[test]
    fn first_time_caller_in_business_hours_scores_high() {
        let q = score(&weekday_call(), History::default());
        assert_eq!(q.score, 75);
        assert_eq!(q.tags, ["business-hours", "first-call"]);
    }

    #[test]
    fn repeat_within_a_day_is_marked_as_likely_duplicate() {
        let call = weekday_call();
        let history = History {
            calls_seen: 1,
            last_seen_unix_seconds: Some(call.time.unix_seconds - 3600),
            conversions: 0,
        };
        let q = score(&call, history);
        assert_eq!(q.score, 40);
        assert!(q.tags.contains(&"repeat-24h".to_owned()));
    }

    #[test]
    fn paid_traffic_keyword_and_verified_caller_id_reach_the_top() {
        let mut call = weekday_call();
        call.attribution = vec![
            Attribute {
                key: "source".into(),
                value: "google-ads".into(),
            },
            Attribute {
                key: "keyword".into(),
                value: "solar panels".into(),
            },
        ];
        call.headers = vec![Header {
            name: "P-Asserted-Identity".into(),
            value: "<sip:+14155550123;verstat=TN-Validation-Passed@carrier.example>".into(),
        }];
        assert_eq!(score(&call, History::default()).score, 100);
    }

    #[test]
    fn anonymous_toll_free_caller_at_night_bottoms_out() {
        let mut call = weekday_call();
        call.caller = "anonymous".into();
        call.caller_geography.area_code = "800".into();
        call.time.local_hour = 23;
        let q = score(&call, History::default());
        assert_eq!(q.score, 0);
        assert_eq!(
            q.tags,
            ["anonymous", "non-geographic-caller", "night", "first-call"]
        );
    }

    #[test]
    fn failed_verification_is_a_spoof_suspect() {
        let mut call = weekday_call();
        call.headers = vec![Header {
            name: "from".into(),
            value: "<sip:+14155550123@c.example;verstat=TN-Validation-Failed>;tag=1".into(),
        }];
        let q = score(&call, History::default());
        assert!(q.tags.contains(&"spoof-suspect".to_owned()));
        assert_eq!(q.score, 45);
    }

    #[test]
    fn the_decision_is_logged() {
        let host = TestHost::default();
        GeoHistoryScorer::score(&weekday_call(), &host).unwrap();
        let logs = host.logs.borrow();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].message, "scored");
    }
}

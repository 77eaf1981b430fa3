//! Hours of operation: whether a bid takes calls at a moment, in its own
//! time zone. Time is passed in.

use crate::model::{Bid, ScheduleWindow};

/// Minutes since midnight of `HH:MM`; `24:00` is the end of the day.
pub fn clock_minutes(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    let total = h * 60 + m;
    (m < 60 && total <= 24 * 60).then_some(total)
}

fn window_contains(window: &ScheduleWindow, weekday: u8, minute: u32) -> bool {
    let (Some(open), Some(close)) = (clock_minutes(&window.open), clock_minutes(&window.close))
    else {
        return false;
    };
    window.weekdays.contains(&weekday) && open <= minute && minute < close
}

/// Whether `bid` takes calls at `unix_seconds`: always without a schedule,
/// else when one of its windows holds the local weekday and time. A time
/// zone the host cannot find (refused at the API) counts as closed.
pub fn is_open(bid: &Bid, unix_seconds: i64) -> bool {
    if bid.schedule.is_empty() {
        return true;
    }
    let (Ok(zone), Ok(at)) = (
        jiff::tz::TimeZone::get(&bid.time_zone),
        jiff::Timestamp::from_second(unix_seconds),
    ) else {
        return false;
    };
    let local = zone.to_datetime(at);
    let weekday = u8::try_from(local.weekday().to_monday_zero_offset()).unwrap_or(0);
    let minute =
        u32::try_from(local.hour()).unwrap_or(0) * 60 + u32::try_from(local.minute()).unwrap_or(0);
    bid.schedule
        .iter()
        .any(|window| window_contains(window, weekday, minute))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bid(time_zone: &str, schedule: Vec<ScheduleWindow>) -> Bid {
        Bid {
            id: "bid".into(),
            tenant_id: "t".into(),
            bidder_id: "b".into(),
            campaign_id: "c".into(),
            target_id: "tgt".into(),
            amount_micros: 1,
            min_quality: 0,
            time_zone: time_zone.into(),
            schedule,
            ..Bid::default()
        }
    }

    fn window(weekdays: &[u8], open: &str, close: &str) -> ScheduleWindow {
        ScheduleWindow {
            weekdays: weekdays.to_vec(),
            open: open.into(),
            close: close.into(),
        }
    }

    /// Unix seconds of a UTC date and time.
    fn utc(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>()
            .expect("timestamp")
            .as_second()
    }

    #[test]
    fn a_weekday_business_hours_window_in_the_bids_time_zone() {
        // Monday to Friday, 09:00–17:00 in New York (UTC−5 in winter).
        let nine_to_five = bid(
            "America/New_York",
            vec![window(&[0, 1, 2, 3, 4], "09:00", "17:00")],
        );
        let open = [
            "2026-11-30T14:00:00Z", // Monday 09:00 in New York: opening, inclusive
            "2026-12-04T21:59:00Z", // Friday 16:59
        ];
        let closed = [
            "2026-11-30T13:59:00Z", // Monday 08:59
            "2026-11-30T22:00:00Z", // Monday 17:00: closing, exclusive
            "2026-12-05T15:00:00Z", // Saturday 10:00
            "2026-12-01T03:00:00Z", // Monday 22:00 in New York, Tuesday in UTC
        ];
        for at in open {
            assert!(is_open(&nine_to_five, utc(at)), "{at} should be open");
        }
        for at in closed {
            assert!(!is_open(&nine_to_five, utc(at)), "{at} should be closed");
        }
    }

    #[test]
    fn no_schedule_is_always_open_and_24_00_closes_at_midnight() {
        assert!(is_open(&bid("UTC", vec![]), utc("2026-11-29T03:00:00Z")));
        let late = bid("UTC", vec![window(&[6], "20:00", "24:00")]);
        assert!(is_open(&late, utc("2026-11-29T23:59:00Z")), "Sunday 23:59");
        assert!(!is_open(&late, utc("2026-11-30T00:00:00Z")), "Monday 00:00");
        assert!(!is_open(
            &bid("Nowhere/Else", vec![window(&[6], "00:00", "24:00")]),
            0
        ));
    }
}

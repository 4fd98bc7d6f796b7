//! Snoozing: a conversation leaves the open list until a time, and comes back by itself then
//! (a job in the durable queue, which any replica's workers run) or as soon as the customer
//! writes again. The presets are read in the time zone of the person choosing them.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::InboxError;
use crate::config::JobLimits;
use crate::domain::{Conversation, FieldError};
use crate::store::Store;

/// The furthest a conversation may be snoozed.
pub const MAX_DAYS: i64 = 365;

/// A snooze chosen from the menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// One hour from now (`1h`).
    OneHour,
    /// Tomorrow at 09:00 (`tomorrow`).
    Tomorrow,
    /// Next Monday at 09:00 (`next_week`).
    NextWeek,
}

impl std::str::FromStr for Preset {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "1h" => Ok(Preset::OneHour),
            "tomorrow" => Ok(Preset::Tomorrow),
            "next_week" => Ok(Preset::NextWeek),
            _ => Err(FieldError::new(
                "preset",
                "must be 1h, tomorrow or next_week",
            )),
        }
    }
}

/// The hour the day-based presets wake at.
const MORNING: u32 = 9;

/// A time zone by its IANA name (`Europe/Lisbon`); UTC when none is given.
pub fn zone(name: Option<&str>) -> Result<Tz, FieldError> {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None => Ok(Tz::UTC),
        Some(name) => name
            .parse()
            .map_err(|_| FieldError::new("zone", "must be a time zone name such as Europe/Lisbon")),
    }
}

/// `date` at `hour`:00 in `zone`, as an instant. A time a clock change skips is read an hour
/// later; one it repeats, as its first occurrence.
fn at_hour(zone: Tz, date: NaiveDate, hour: u32) -> DateTime<Utc> {
    local(
        zone,
        date.and_time(NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or_default()),
    )
}

/// A wall-clock time of `zone` as an instant, as [`at_hour`] reads it.
pub fn local(zone: Tz, time: NaiveDateTime) -> DateTime<Utc> {
    zone.from_local_datetime(&time)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(time + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&time))
}

/// When `preset`, chosen at `now` by someone in `zone`, ends.
pub fn preset_until(preset: Preset, zone: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now.with_timezone(&zone).date_naive();
    match preset {
        Preset::OneHour => now + Duration::hours(1),
        Preset::Tomorrow => at_hour(zone, today + Duration::days(1), MORNING),
        Preset::NextWeek => {
            let ahead = 7 - i64::from(today.weekday().num_days_from_monday());
            at_hour(zone, today + Duration::days(ahead), MORNING)
        }
    }
}

/// Refuses an end that is not ahead of `now`, or more than [`MAX_DAYS`] ahead.
pub fn check_until(
    field: &str,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), FieldError> {
    if until <= now {
        return Err(FieldError::new(field, "must be in the future"));
    }
    if until > now + Duration::days(MAX_DAYS) {
        return Err(FieldError::new(field, "must be within a year"));
    }
    Ok(())
}

/// Snoozes `conversation` until `until` (checked against now). The conversation as it now is.
pub async fn snooze(
    store: &dyn Store,
    conversation: &Conversation,
    until: DateTime<Utc>,
    limits: JobLimits,
) -> Result<Conversation, InboxError> {
    check_until("until", until, Utc::now()).map_err(|e| InboxError::Invalid(vec![e]))?;
    Ok(store
        .snooze_conversation(conversation.id, Some(until), limits)
        .await?)
}

/// Brings `conversation` back to the open list now.
pub async fn wake(
    store: &dyn Store,
    conversation: &Conversation,
    limits: JobLimits,
) -> Result<Conversation, InboxError> {
    Ok(store
        .snooze_conversation(conversation.id, None, limits)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn presets_end_in_the_choosers_time_zone() {
        let lisbon = zone(Some("Europe/Lisbon")).unwrap();
        let sao_paulo = zone(Some("America/Sao_Paulo")).unwrap();
        let tokyo = zone(Some("Asia/Tokyo")).unwrap();
        // Wednesday 2026-11-25, 23:30 UTC.
        let now = utc("2026-11-25T23:30:00Z");
        for (preset, zone, expected) in [
            (Preset::OneHour, Tz::UTC, "2026-11-26T00:30:00Z"),
            (Preset::Tomorrow, Tz::UTC, "2026-11-26T09:00:00Z"),
            // Lisbon is on UTC in winter: Thursday 09:00.
            (Preset::Tomorrow, lisbon, "2026-11-26T09:00:00Z"),
            // São Paulo (UTC-3) is still on Wednesday: tomorrow is Thursday 09:00 there.
            (Preset::Tomorrow, sao_paulo, "2026-11-26T12:00:00Z"),
            // Tokyo (UTC+9) is already on Thursday: tomorrow is Friday 09:00 there.
            (Preset::Tomorrow, tokyo, "2026-11-27T00:00:00Z"),
            // Next week is the next Monday.
            (Preset::NextWeek, Tz::UTC, "2026-11-30T09:00:00Z"),
            (Preset::NextWeek, sao_paulo, "2026-11-30T12:00:00Z"),
        ] {
            assert_eq!(
                preset_until(preset, zone, now),
                utc(expected),
                "{preset:?} {zone}"
            );
        }
        // On a Monday, next week is seven days on, not today.
        let monday = utc("2026-11-30T08:00:00Z");
        assert_eq!(
            preset_until(Preset::NextWeek, Tz::UTC, monday),
            utc("2026-12-07T09:00:00Z")
        );
    }

    #[test]
    fn clock_changes_do_not_lose_the_morning() {
        // Lisbon moves from 01:00 to 02:00 on 2026-03-29: 01:30 does not exist there.
        let lisbon = zone(Some("Europe/Lisbon")).unwrap();
        let skipped = NaiveDate::from_ymd_opt(2026, 3, 29)
            .unwrap()
            .and_hms_opt(1, 30, 0)
            .unwrap();
        assert_eq!(local(lisbon, skipped), utc("2026-03-29T01:30:00Z"));
        // Tomorrow 09:00 across the change is 09:00 summer time.
        assert_eq!(
            preset_until(Preset::Tomorrow, lisbon, utc("2026-03-28T12:00:00Z")),
            utc("2026-03-29T08:00:00Z")
        );
    }

    #[test]
    fn ends_must_be_ahead_and_within_a_year() {
        let now = utc("2026-11-25T12:00:00Z");
        assert!(check_until("until", now + Duration::minutes(1), now).is_ok());
        assert!(check_until("until", now + Duration::days(MAX_DAYS), now).is_ok());
        assert_eq!(
            check_until("until", now, now).unwrap_err().message,
            "must be in the future"
        );
        assert!(check_until("until", now - Duration::hours(1), now).is_err());
        assert!(check_until("until", now + Duration::days(MAX_DAYS + 1), now).is_err());
        assert_eq!(zone(None).unwrap(), Tz::UTC);
        assert!(zone(Some("Mars/Olympus")).is_err());
        assert!("1w".parse::<Preset>().is_err());
    }
}

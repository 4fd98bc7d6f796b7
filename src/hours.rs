//! Business hours, pure: when the people behind an agent answer. An agent's hours are a time
//! zone, opening periods per weekday and closed dates; from them follow whether the team is in
//! now and when it next opens, which the pipeline tells a customer whose conversation is handed
//! over out of hours ("a person will answer from Monday 09:00").

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// When a person answers, in the business's time zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BusinessHours {
    /// IANA time zone, e.g. `Europe/Lisbon`.
    pub time_zone: String,
    /// Opening periods per weekday, `HH:MM-HH:MM` (end may be `24:00`).
    pub weekly: WeeklyHours,
    /// Dates the team is closed all day (`YYYY-MM-DD`, in the business's time zone).
    pub holidays: Vec<NaiveDate>,
    /// Told to a customer whose conversation is handed over while closed; `{opens}` becomes
    /// the next opening ("Monday 09:00"). Empty: the agent's usual escalation message.
    pub closed_message: String,
    /// WhatsApp number told about escalations while closed, at once. Without one the note to
    /// the support contact waits for opening time.
    pub on_call_contact: Option<String>,
}

impl Default for BusinessHours {
    fn default() -> Self {
        let office = vec!["09:00-18:00".to_string()];
        Self {
            time_zone: "UTC".into(),
            weekly: WeeklyHours {
                mon: office.clone(),
                tue: office.clone(),
                wed: office.clone(),
                thu: office.clone(),
                fri: office,
                sat: Vec::new(),
                sun: Vec::new(),
            },
            holidays: Vec::new(),
            closed_message:
                "Our team is away right now. A colleague will answer you here from {opens}.".into(),
            on_call_contact: None,
        }
    }
}

/// Opening periods for each day of the week.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct WeeklyHours {
    pub mon: Vec<String>,
    pub tue: Vec<String>,
    pub wed: Vec<String>,
    pub thu: Vec<String>,
    pub fri: Vec<String>,
    pub sat: Vec<String>,
    pub sun: Vec<String>,
}

impl WeeklyHours {
    fn day(&self, day: Weekday) -> &[String] {
        match day {
            Weekday::Mon => &self.mon,
            Weekday::Tue => &self.tue,
            Weekday::Wed => &self.wed,
            Weekday::Thu => &self.thu,
            Weekday::Fri => &self.fri,
            Weekday::Sat => &self.sat,
            Weekday::Sun => &self.sun,
        }
    }

    fn days(&self) -> [(&'static str, &[String]); 7] {
        [
            ("mon", &self.mon),
            ("tue", &self.tue),
            ("wed", &self.wed),
            ("thu", &self.thu),
            ("fri", &self.fri),
            ("sat", &self.sat),
            ("sun", &self.sun),
        ]
    }
}

/// One opening period of a day, in minutes from midnight: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Period {
    start: u32,
    end: u32,
}

fn minutes(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    ((h < 24 && m < 60) || (h == 24 && m == 0)).then_some(h * 60 + m)
}

fn period(s: &str) -> Option<Period> {
    let (start, end) = s.split_once('-')?;
    let (start, end) = (minutes(start)?, minutes(end)?);
    (start < end).then_some(Period { start, end })
}

/// Whether the team is in, and when it next opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Open now.
    Open,
    /// Closed; opens at this instant, if it ever does.
    Closed {
        /// The next opening.
        opens: Option<DateTime<Tz>>,
    },
}

/// One problem with a set of hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoursProblem {
    /// The field's path below the hours, e.g. `weekly.mon[0]`.
    pub field: String,
    /// What is wrong with it.
    pub message: &'static str,
}

impl HoursProblem {
    fn new(field: impl Into<String>, message: &'static str) -> Self {
        HoursProblem {
            field: field.into(),
            message,
        }
    }
}

impl BusinessHours {
    /// Every problem with these hours, each with its field's path below the hours (`time_zone`,
    /// `weekly.mon[0]`). The on-call contact is a phone number, which the agent's configuration
    /// checks with its other numbers.
    pub fn problems(&self) -> Vec<HoursProblem> {
        let mut problems = Vec::new();
        if self.time_zone.parse::<Tz>().is_err() {
            problems.push(HoursProblem::new(
                "time_zone",
                "must be an IANA time zone such as `Europe/Lisbon`",
            ));
        }
        for (day, periods) in self.weekly.days() {
            let mut parsed: Vec<Period> = Vec::new();
            for (i, p) in periods.iter().enumerate() {
                match period(p) {
                    Some(p) => parsed.push(p),
                    None => problems.push(HoursProblem::new(
                        format!("weekly.{day}[{i}]"),
                        "must be `HH:MM-HH:MM` with the end after the start, e.g. `09:00-13:00`",
                    )),
                }
            }
            parsed.sort_by_key(|p| p.start);
            if parsed.windows(2).any(|w| w[1].start < w[0].end) {
                problems.push(HoursProblem::new(
                    format!("weekly.{day}"),
                    "periods must not overlap",
                ));
            }
        }
        if self.closed_message.len() > 1000 {
            problems.push(HoursProblem::new(
                "closed_message",
                "must be at most 1000 bytes",
            ));
        }
        problems
    }

    fn zone(&self) -> Tz {
        self.time_zone.parse().unwrap_or(Tz::UTC)
    }

    fn periods(&self, date: NaiveDate) -> Vec<Period> {
        if self.holidays.contains(&date) {
            return Vec::new();
        }
        let mut periods: Vec<Period> = self
            .weekly
            .day(date.weekday())
            .iter()
            .filter_map(|p| period(p))
            .collect();
        periods.sort_by_key(|p| p.start);
        periods
    }

    /// Whether the team is in at `now`, and if not when it next opens (looking a year ahead).
    pub fn at(&self, now: DateTime<Utc>) -> Availability {
        let zone = self.zone();
        let local = now.with_timezone(&zone);
        let today = local.date_naive();
        let minute = local.hour() * 60 + local.minute();
        if self
            .periods(today)
            .iter()
            .any(|p| p.start <= minute && minute < p.end)
        {
            return Availability::Open;
        }
        let mut date = today;
        for _ in 0..=366 {
            for p in self.periods(date) {
                if date == today && p.start <= minute {
                    continue;
                }
                if let Some(opens) = local_instant(zone, date, p.start) {
                    return Availability::Closed { opens: Some(opens) };
                }
            }
            date = match date.checked_add_days(Days::new(1)) {
                Some(d) => d,
                None => break,
            };
        }
        Availability::Closed { opens: None }
    }
}

/// The instant `minute` after midnight of `date` in `zone`; a time skipped by a clock change
/// becomes the first instant after it.
fn local_instant(zone: Tz, date: NaiveDate, minute: u32) -> Option<DateTime<Tz>> {
    let mut m = minute;
    while m < 24 * 60 + 120 {
        let (day, at) = if m >= 24 * 60 {
            (date.checked_add_days(Days::new(1))?, m - 24 * 60)
        } else {
            (date, m)
        };
        let time = NaiveTime::from_hms_opt(at / 60, at % 60, 0)?;
        if let Some(instant) = zone.from_local_datetime(&day.and_time(time)).earliest() {
            return Some(instant);
        }
        m += 1;
    }
    None
}

/// Words for saying when a team opens, per language.
struct Words {
    days: [&'static str; 7],
    today: &'static str,
    tomorrow: &'static str,
}

fn words(language: &str) -> Words {
    match language {
        "pt" => Words {
            days: [
                "segunda-feira",
                "terça-feira",
                "quarta-feira",
                "quinta-feira",
                "sexta-feira",
                "sábado",
                "domingo",
            ],
            today: "hoje",
            tomorrow: "amanhã",
        },
        "es" => Words {
            days: [
                "lunes",
                "martes",
                "miércoles",
                "jueves",
                "viernes",
                "sábado",
                "domingo",
            ],
            today: "hoy",
            tomorrow: "mañana",
        },
        "fr" => Words {
            days: [
                "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
            ],
            today: "aujourd'hui",
            tomorrow: "demain",
        },
        "de" => Words {
            days: [
                "Montag",
                "Dienstag",
                "Mittwoch",
                "Donnerstag",
                "Freitag",
                "Samstag",
                "Sonntag",
            ],
            today: "heute",
            tomorrow: "morgen",
        },
        _ => Words {
            days: [
                "Monday",
                "Tuesday",
                "Wednesday",
                "Thursday",
                "Friday",
                "Saturday",
                "Sunday",
            ],
            today: "today",
            tomorrow: "tomorrow",
        },
    }
}

/// `opens` said from `now`'s point of view, in `language` (ISO 639-1; English otherwise):
/// "today 14:00", "tomorrow 09:00", "Monday 09:00", or "Monday 22 December 09:00" a week or
/// more ahead.
pub fn describe_opening(opens: DateTime<Tz>, now: DateTime<Utc>, language: &str) -> String {
    let w = words(language);
    let today = now.with_timezone(&opens.timezone()).date_naive();
    let date = opens.date_naive();
    let time = opens.format("%H:%M");
    let days_ahead = (date - today).num_days();
    let day = match days_ahead {
        0 => w.today.to_string(),
        1 => w.tomorrow.to_string(),
        2..=6 => w.days[date.weekday().num_days_from_monday() as usize].to_string(),
        _ => format!(
            "{} {}",
            w.days[date.weekday().num_days_from_monday() as usize],
            date.format("%Y-%m-%d")
        ),
    };
    format!("{day} {time}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lisbon() -> BusinessHours {
        BusinessHours {
            time_zone: "Europe/Lisbon".into(),
            weekly: WeeklyHours {
                mon: vec!["09:00-13:00".into(), "14:00-18:00".into()],
                tue: vec!["09:00-18:00".into()],
                wed: vec!["09:00-18:00".into()],
                thu: vec!["09:00-18:00".into()],
                fri: vec!["09:00-18:00".into()],
                sat: vec!["10:00-13:00".into()],
                sun: vec![],
            },
            holidays: vec![NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()],
            ..Default::default()
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn opens(hours: &BusinessHours, now: &str) -> Option<String> {
        match hours.at(utc(now)) {
            Availability::Open => None,
            Availability::Closed { opens } => Some(opens.unwrap().to_rfc3339()),
        }
    }

    #[test]
    fn open_inside_a_period_and_closed_at_its_end() {
        let h = lisbon();
        // Monday 23 November 2026, Lisbon is on UTC in winter.
        assert_eq!(opens(&h, "2026-11-23T09:00:00Z"), None);
        assert_eq!(opens(&h, "2026-11-23T12:59:00Z"), None);
        assert_eq!(
            opens(&h, "2026-11-23T13:00:00Z").as_deref(),
            Some("2026-11-23T14:00:00+00:00"),
            "the lunch break"
        );
        assert_eq!(
            opens(&h, "2026-11-23T18:00:00Z").as_deref(),
            Some("2026-11-24T09:00:00+00:00")
        );
    }

    #[test]
    fn the_weekend_and_holidays_are_skipped() {
        let h = lisbon();
        // Saturday 28 November after 13:00: Monday 30 at 09:00.
        assert_eq!(
            opens(&h, "2026-11-28T15:00:00Z").as_deref(),
            Some("2026-11-30T09:00:00+00:00")
        );
        // Christmas Eve evening (Thursday): Christmas (Friday) is a holiday, Saturday opens 10:00.
        assert_eq!(
            opens(&h, "2026-12-24T19:00:00Z").as_deref(),
            Some("2026-12-26T10:00:00+00:00")
        );
        assert!(matches!(
            h.at(utc("2026-12-25T11:00:00Z")),
            Availability::Closed { .. }
        ));
    }

    #[test]
    fn time_zones_and_summer_time_are_respected() {
        let h = lisbon();
        // In July Lisbon is UTC+1: 08:30 UTC is 09:30 local, open.
        assert_eq!(opens(&h, "2026-07-06T08:30:00Z"), None);
        // 07:30 UTC is 08:30 local: opens at 09:00 local, 08:00 UTC.
        assert_eq!(
            opens(&h, "2026-07-06T07:30:00Z").as_deref(),
            Some("2026-07-06T09:00:00+01:00")
        );
        let sao_paulo = BusinessHours {
            time_zone: "America/Sao_Paulo".into(),
            ..Default::default()
        };
        // 11:00 UTC is 08:00 in São Paulo.
        assert_eq!(
            opens(&sao_paulo, "2026-11-23T11:00:00Z").as_deref(),
            Some("2026-11-23T09:00:00-03:00")
        );
    }

    #[test]
    fn never_opening_is_said() {
        let h = BusinessHours {
            weekly: WeeklyHours::default(),
            ..Default::default()
        };
        assert_eq!(
            h.at(utc("2026-11-23T10:00:00Z")),
            Availability::Closed { opens: None }
        );
    }

    #[test]
    fn bad_hours_are_reported_by_path() {
        let mut h = lisbon();
        h.time_zone = "Mars/Olympus".into();
        h.weekly.tue = vec!["18:00-09:00".into(), "9-5".into()];
        h.weekly.wed = vec!["09:00-13:00".into(), "12:00-18:00".into()];
        let fields: Vec<String> = h.problems().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["time_zone", "weekly.tue[0]", "weekly.tue[1]", "weekly.wed",]
        );
        assert!(lisbon().problems().is_empty());
        let all_day = BusinessHours {
            weekly: WeeklyHours {
                sun: vec!["00:00-24:00".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(all_day.problems().is_empty());
    }

    #[test]
    fn openings_are_said_in_the_customers_language() {
        let h = lisbon();
        let now = utc("2026-11-23T19:00:00Z"); // Monday evening
        let Availability::Closed { opens: Some(o) } = h.at(now) else {
            panic!("closed")
        };
        assert_eq!(describe_opening(o, now, "en"), "tomorrow 09:00");
        assert_eq!(describe_opening(o, now, "pt"), "amanhã 09:00");
        let friday = utc("2026-11-27T19:00:00Z");
        let Availability::Closed { opens: Some(o) } = h.at(friday) else {
            panic!("closed")
        };
        assert_eq!(describe_opening(o, friday, "fr"), "demain 10:00");
        let saturday = utc("2026-11-28T15:00:00Z");
        let Availability::Closed { opens: Some(o) } = h.at(saturday) else {
            panic!("closed")
        };
        assert_eq!(describe_opening(o, saturday, "en"), "Monday 09:00");
        assert_eq!(describe_opening(o, saturday, "es"), "lunes 09:00");
        let christmas_eve = utc("2026-12-18T19:00:00Z");
        let far = BusinessHours {
            holidays: (19..=31)
                .map(|d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap())
                .collect(),
            ..lisbon()
        };
        let Availability::Closed { opens: Some(o) } = far.at(christmas_eve) else {
            panic!("closed")
        };
        assert_eq!(
            describe_opening(o, christmas_eve, "en"),
            "Friday 2027-01-01 09:00"
        );
        let lunch = utc("2026-11-23T13:30:00Z");
        let Availability::Closed { opens: Some(o) } = h.at(lunch) else {
            panic!("closed")
        };
        assert_eq!(describe_opening(o, lunch, "de"), "heute 14:00");
    }
}

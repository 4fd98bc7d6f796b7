//! Reports: how the inbox did over a range of days. Conversations per day (a conversation
//! counts on each day its customer wrote), the share the bot answered alone (it replied, no
//! person wrote and no escalation opened that day), people's first response time (from an
//! escalation opening to a person's first message; takeovers, where the person wrote first,
//! are left out) and resolution time (from opening to resolving), as median and 90th
//! percentile, escalations by reason, and the satisfaction survey's scores. Filtered by
//! channel and by person (the conversations now assigned to them, and the surveys about their
//! work); days are cut at midnight in the viewer's time zone. The JSON API, the console's page
//! and its CSV export all read [`report`].

use chrono::{DateTime, Duration, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::InboxError;
use crate::domain::{
    ChannelId, EscalationReason, FieldError, ProviderKind, Resolution, UserId, WorkspaceId,
};
use crate::store::{ReportScope, Store};

/// The longest range a report covers.
pub const MAX_DAYS: i64 = 366;
/// The range when none is given: the last 30 days, today included.
pub const DEFAULT_DAYS: i64 = 30;

/// What a report is asked for, as given (the API's query, the console's form).
#[derive(Debug, Clone, Default)]
pub struct ReportRequest {
    /// First day (`YYYY-MM-DD`), included.
    pub from: Option<String>,
    /// Last day, included.
    pub to: Option<String>,
    /// Only this channel.
    pub channel: Option<String>,
    /// Only this person's conversations.
    pub person: Option<String>,
    /// IANA time zone the days are cut in (UTC when none).
    pub zone: Option<String>,
}

/// One day of the range.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReportDay {
    /// The date.
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    /// Conversations in which the customer wrote that day.
    pub conversations: i64,
    /// Of those, the ones the bot answered alone.
    pub bot_only: i64,
    /// Escalations opened that day.
    pub escalations: i64,
}

/// Durations of one kind, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Durations {
    /// How many were measured.
    pub count: usize,
    /// Their median.
    pub median_secs: Option<f64>,
    /// Their 90th percentile (nine in ten took at most this).
    pub p90_secs: Option<f64>,
}

/// Escalations of one reason.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReasonCount {
    /// The reason.
    pub reason: EscalationReason,
    /// How many opened in the range.
    pub count: i64,
}

/// The satisfaction survey's figures.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CsatSummary {
    /// Surveys sent.
    pub sent: i64,
    /// Surveys answered.
    pub answered: i64,
    /// Answers with the scores 1 to 5, in that order.
    pub scores: Vec<i64>,
    /// The mean score.
    pub average: Option<f64>,
    /// The share of answers scoring 4 or 5, 0 to 1.
    pub satisfied_share: Option<f64>,
}

/// A report.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// First day.
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    /// Last day (included).
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
    /// The time zone days are cut in.
    pub zone: String,
    /// The channel it is limited to.
    pub channel: Option<ChannelId>,
    /// The person it is limited to.
    pub person: Option<UserId>,
    /// Every day of the range, oldest first.
    pub days: Vec<ReportDay>,
    /// Conversations, summed over the days (a conversation counts once a day).
    pub conversations: i64,
    /// Of those, the ones the bot answered alone.
    pub bot_only: i64,
    /// `bot_only / conversations`, 0 to 1.
    pub bot_only_share: Option<f64>,
    /// From an escalation opening to a person's first message.
    pub first_response: Durations,
    /// From an escalation opening to its resolving.
    pub resolution: Durations,
    /// Escalations opened in the range.
    pub escalations_total: i64,
    /// By reason, most frequent first (reasons with none left out).
    pub escalations: Vec<ReasonCount>,
    /// The satisfaction survey.
    pub csat: CsatSummary,
}

/// The filter, checked against the workspace: dates, channel, person and zone.
#[derive(Debug, Clone)]
pub struct ReportFilter {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// The zone.
    pub zone: Tz,
    /// The channel.
    pub channel: Option<ChannelId>,
    /// The person.
    pub person: Option<UserId>,
}

/// The report `request` asks for in workspace `ws`, checked as [`filter`] checks it.
pub async fn requested(
    store: &dyn Store,
    ws: WorkspaceId,
    request: &ReportRequest,
    now: DateTime<Utc>,
) -> Result<Report, InboxError> {
    let filter = filter(store, ws, request, now).await?;
    report(store, ws, &filter).await
}

/// Reads and checks `request` for workspace `ws`; `today` is the default range's last day.
pub async fn filter(
    store: &dyn Store,
    ws: WorkspaceId,
    request: &ReportRequest,
    now: DateTime<Utc>,
) -> Result<ReportFilter, InboxError> {
    let mut errors = Vec::new();
    let zone = super::snooze::zone(request.zone.as_deref()).unwrap_or_else(|e| {
        errors.push(e);
        Tz::UTC
    });
    let today = now.with_timezone(&zone).date_naive();
    let mut date = |field: &str, value: &Option<String>| -> Option<NaiveDate> {
        let value = value.as_deref().map(str::trim).filter(|v| !v.is_empty())?;
        match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                errors.push(FieldError::new(field, "must be a date such as 2026-11-26"));
                None
            }
        }
    };
    let given_from = date("from", &request.from);
    let given_to = date("to", &request.to);
    let to = given_to.unwrap_or(today);
    let from = given_from.unwrap_or(to - Duration::days(DEFAULT_DAYS - 1));
    if from > to {
        errors.push(FieldError::new("from", "must be on or before the last day"));
    } else if (to - from).num_days() >= MAX_DAYS {
        errors.push(FieldError::new(
            "to",
            format!("the range must be at most {MAX_DAYS} days"),
        ));
    }
    let channel = match nonempty(&request.channel) {
        None => None,
        Some(raw) => {
            let found = match raw.parse::<ChannelId>() {
                Ok(id) => store
                    .channel(id)
                    .await?
                    .filter(|c| c.workspace_id == ws && c.provider != ProviderKind::Sandbox),
                Err(_) => None,
            };
            if found.is_none() {
                errors.push(FieldError::new(
                    "channel",
                    "is not a channel of this workspace",
                ));
            }
            found.map(|c| c.id)
        }
    };
    let person = match nonempty(&request.person) {
        None => None,
        Some(raw) => {
            let member = match raw.parse::<UserId>() {
                Ok(id) => store.membership(id, ws).await?.map(|_| id),
                Err(_) => None,
            };
            if member.is_none() {
                errors.push(FieldError::new(
                    "person",
                    "is not a member of this workspace",
                ));
            }
            member
        }
    };
    if !errors.is_empty() {
        return Err(InboxError::Invalid(errors));
    }
    Ok(ReportFilter {
        from,
        to,
        zone,
        channel,
        person,
    })
}

fn nonempty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The report of workspace `ws` for `filter`.
pub async fn report(
    store: &dyn Store,
    ws: WorkspaceId,
    filter: &ReportFilter,
) -> Result<Report, InboxError> {
    let channels = match filter.channel {
        Some(id) => vec![id],
        None => store
            .list_channels(Some(ws), None)
            .await?
            .into_iter()
            .filter(|c| c.provider != ProviderKind::Sandbox)
            .map(|c| c.id)
            .collect(),
    };
    let scope = scope(filter, channels);
    let activity = store.activity_by_day(&scope).await?;
    let escalations = store.escalation_times(&scope).await?;
    let surveys = store.survey_counts(&scope).await?;

    let first = scope.day_of(scope.from);
    let mut days: Vec<ReportDay> = (0..=(filter.to - filter.from).num_days())
        .map(|i| ReportDay {
            date: filter.from + Duration::days(i),
            conversations: 0,
            bot_only: 0,
            escalations: 0,
        })
        .collect();
    let slot = |day: i64| {
        usize::try_from(day - first)
            .ok()
            .filter(|i| *i < days.len())
    };
    let mut counted = Vec::new();
    for a in &activity {
        if let Some(i) = slot(a.day) {
            counted.push((i, a.conversations, a.bot_only));
        }
    }
    let mut opened = Vec::new();
    for e in &escalations {
        if let Some(i) = slot(scope.day_of(e.opened_at)) {
            opened.push(i);
        }
    }
    for (i, conversations, bot_only) in counted {
        days[i].conversations += conversations;
        days[i].bot_only += bot_only;
    }
    for i in opened {
        days[i].escalations += 1;
    }
    let conversations: i64 = days.iter().map(|d| d.conversations).sum();
    let bot_only: i64 = days.iter().map(|d| d.bot_only).sum();

    let secs = |from: DateTime<Utc>, to: DateTime<Utc>| {
        ((to - from).num_milliseconds().max(0)) as f64 / 1000.0
    };
    let first_response: Vec<f64> = escalations
        .iter()
        .filter(|e| e.reason != EscalationReason::HumanTakeover)
        .filter_map(|e| e.first_person_at.map(|at| secs(e.opened_at, at)))
        .collect();
    let resolution: Vec<f64> = escalations
        .iter()
        .filter(|e| e.resolution == Some(Resolution::Resolved))
        .filter_map(|e| e.closed_at.map(|at| secs(e.opened_at, at)))
        .collect();
    let mut by_reason: Vec<ReasonCount> = EscalationReason::ALL
        .iter()
        .map(|r| ReasonCount {
            reason: *r,
            count: escalations.iter().filter(|e| e.reason == *r).count() as i64,
        })
        .filter(|r| r.count > 0)
        .collect();
    by_reason.sort_by_key(|r| std::cmp::Reverse(r.count));

    let answered: i64 = surveys.scores.iter().sum();
    let total: i64 = surveys
        .scores
        .iter()
        .enumerate()
        .map(|(i, n)| (i as i64 + 1) * n)
        .sum();
    let csat = CsatSummary {
        sent: surveys.sent,
        answered,
        scores: surveys.scores.to_vec(),
        average: share(total, answered),
        satisfied_share: share(surveys.scores[3] + surveys.scores[4], answered),
    };
    Ok(Report {
        from: filter.from,
        to: filter.to,
        zone: filter.zone.name().to_string(),
        channel: filter.channel,
        person: filter.person,
        days,
        conversations,
        bot_only,
        bot_only_share: share(bot_only, conversations),
        first_response: durations(first_response),
        resolution: durations(resolution),
        escalations_total: escalations.len() as i64,
        escalations: by_reason,
        csat,
    })
}

/// The store's scope for `filter`: days cut with the zone's offset at the range's first noon
/// (one offset for the whole range, so every day is 24 hours long).
fn scope(filter: &ReportFilter, channels: Vec<ChannelId>) -> ReportScope {
    let noon = filter.from.and_hms_opt(12, 0, 0).unwrap_or_default();
    let offset = filter
        .zone
        .offset_from_utc_datetime(&noon)
        .fix()
        .local_minus_utc() as i64
        * 1000;
    let midnight = |d: NaiveDate| {
        Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            - Duration::milliseconds(offset)
    };
    ReportScope {
        channels,
        person: filter.person,
        from: midnight(filter.from),
        to: midnight(filter.to + Duration::days(1)),
        day_offset_ms: offset,
    }
}

fn share(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The count, median and 90th percentile (nearest rank) of `values`.
pub fn durations(mut values: Vec<f64>) -> Durations {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = match n {
        0 => None,
        n if n % 2 == 1 => Some(values[n / 2]),
        n => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    };
    let p90 = (n > 0).then(|| values[((n as f64 * 0.9).ceil() as usize).clamp(1, n) - 1]);
    Durations {
        count: n,
        median_secs: median,
        p90_secs: p90,
    }
}

/// The report as CSV: a row per day, then the summary's figures as `metric,value` rows.
pub fn csv(report: &Report) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    out.write_record([
        "date",
        "conversations",
        "answered_by_bot_alone",
        "escalations",
    ])?;
    for d in &report.days {
        out.write_record([
            d.date.to_string(),
            d.conversations.to_string(),
            d.bot_only.to_string(),
            d.escalations.to_string(),
        ])?;
    }
    out.write_record([""])?;
    out.write_record(["metric", "value"])?;
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    let mut rows: Vec<(String, String)> = vec![
        ("from".into(), report.from.to_string()),
        ("to".into(), report.to.to_string()),
        ("zone".into(), report.zone.clone()),
        ("conversations".into(), report.conversations.to_string()),
        ("answered_by_bot_alone".into(), report.bot_only.to_string()),
        (
            "answered_by_bot_alone_share".into(),
            opt(report.bot_only_share),
        ),
        (
            "first_response_count".into(),
            report.first_response.count.to_string(),
        ),
        (
            "first_response_median_seconds".into(),
            opt(report.first_response.median_secs),
        ),
        (
            "first_response_p90_seconds".into(),
            opt(report.first_response.p90_secs),
        ),
        (
            "resolution_count".into(),
            report.resolution.count.to_string(),
        ),
        (
            "resolution_median_seconds".into(),
            opt(report.resolution.median_secs),
        ),
        (
            "resolution_p90_seconds".into(),
            opt(report.resolution.p90_secs),
        ),
        ("escalations".into(), report.escalations_total.to_string()),
    ];
    for r in &report.escalations {
        rows.push((
            format!("escalations_{}", r.reason.as_str()),
            r.count.to_string(),
        ));
    }
    rows.push(("csat_sent".into(), report.csat.sent.to_string()));
    rows.push(("csat_answered".into(), report.csat.answered.to_string()));
    rows.push(("csat_average".into(), opt(report.csat.average)));
    rows.push((
        "csat_satisfied_share".into(),
        opt(report.csat.satisfied_share),
    ));
    for (i, n) in report.csat.scores.iter().enumerate() {
        rows.push((format!("csat_score_{}", i + 1), n.to_string()));
    }
    for (metric, value) in rows {
        out.write_record([metric, value])?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ninetieth_percentiles() {
        let cases: &[(&[f64], Option<f64>, Option<f64>)] = &[
            (&[], None, None),
            (&[7.0], Some(7.0), Some(7.0)),
            (&[1.0, 3.0], Some(2.0), Some(3.0)),
            (&[5.0, 1.0, 3.0], Some(3.0), Some(5.0)),
            (
                &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
                Some(5.5),
                Some(9.0),
            ),
            (
                &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 100.0],
                Some(6.0),
                Some(10.0),
            ),
        ];
        for (values, median, p90) in cases {
            let d = durations(values.to_vec());
            assert_eq!(d.count, values.len());
            assert_eq!(d.median_secs, *median, "median of {values:?}");
            assert_eq!(d.p90_secs, *p90, "p90 of {values:?}");
        }
    }

    #[test]
    fn days_are_cut_at_midnight_in_the_zone() {
        let filter = ReportFilter {
            from: NaiveDate::from_ymd_opt(2026, 7, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 7, 2).unwrap(),
            zone: "Europe/Lisbon".parse().unwrap(),
            channel: None,
            person: None,
        };
        let s = scope(&filter, Vec::new());
        // Lisbon is UTC+1 in July: its 1 July begins at 23:00 UTC on 30 June.
        assert_eq!(s.from.to_rfc3339(), "2026-06-30T23:00:00+00:00");
        assert_eq!(s.to.to_rfc3339(), "2026-07-02T23:00:00+00:00");
        let late = "2026-07-01T23:30:00Z".parse::<DateTime<Utc>>().unwrap();
        let early = "2026-07-01T22:30:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(s.day_of(s.from), s.day_of(early));
        assert_eq!(s.day_of(late), s.day_of(early) + 1);
    }
}

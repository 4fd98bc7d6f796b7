//! The Reports page: the inbox's report ([`crate::inbox::reports`]) as charts drawn here as
//! SVG ([`super::charts`]), each with a table of its figures, a form that filters by dates,
//! channel and person, and the same report as a CSV download. Everyone in the workspace may
//! read it, as the JSON API's `GET /reports`.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::Datelike;
use minijinja::{context, Value};

use super::charts::{self, Bar, DayBar};
use super::{describe, error_page, page_viewer, render};
use crate::accounts::Roles;
use crate::domain::{MemberRole, ProviderKind};
use crate::http::{ApiError, AppState};
use crate::inbox::reports::{self, Report, ReportRequest};
use crate::inbox::InboxError;

/// The page's routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/reports", get(page))
        .route("/reports/export.csv", get(export))
}

/// The form's fields (anything else is ignored; empty means "any").
fn request(params: &HashMap<String, String>) -> ReportRequest {
    let field = |name: &str| params.get(name).cloned();
    ReportRequest {
        from: field("from"),
        to: field("to"),
        channel: field("channel"),
        person: field("person"),
        zone: field("zone"),
    }
}

async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let viewer = match page_viewer(&state, &headers, Roles::ANY, "/reports").await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let ws = viewer.caller.workspace;
    let store = state.store.as_ref();
    let choices = async {
        let channels: Vec<Value> = store
            .list_channels(Some(ws), None)
            .await?
            .into_iter()
            .filter(|c| c.provider != ProviderKind::Sandbox)
            .map(|c| context! { id => c.id.to_string(), name => c.name })
            .collect();
        let people: Vec<Value> = store
            .members(ws)
            .await?
            .into_iter()
            .filter(|m| matches!(m.role, MemberRole::Owner | MemberRole::Agent))
            .map(|m| context! { id => m.user.id.to_string(), name => m.user.name })
            .collect();
        Ok::<_, ApiError>((channels, people))
    };
    let (channels, people) = match choices.await {
        Ok(found) => found,
        Err(e) => return error_page(Some(&viewer), e),
    };
    let asked = request(&params);
    let now = chrono::Utc::now();
    let (report, error) = match reports::requested(store, ws, &asked, now).await {
        Ok(report) => (Some(report), None),
        Err(InboxError::Invalid(fields)) => (None, Some(describe(&ApiError::Invalid(fields)))),
        Err(e) => return error_page(Some(&viewer), e.into()),
    };
    let shown = report.as_ref().map(shown);
    let export = report.as_ref().map(|r| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("from", &r.from.to_string());
        q.append_pair("to", &r.to.to_string());
        q.append_pair("zone", &r.zone);
        if let Some(c) = r.channel {
            q.append_pair("channel", &c.to_string());
        }
        if let Some(p) = r.person {
            q.append_pair("person", &p.to_string());
        }
        format!("/reports/export.csv?{}", q.finish())
    });
    let form = context! {
        from => report.as_ref().map(|r| r.from.to_string()).or(asked.from.clone()),
        to => report.as_ref().map(|r| r.to.to_string()).or(asked.to.clone()),
        channel => asked.channel.clone().unwrap_or_default(),
        person => asked.person.clone().unwrap_or_default(),
        zone => report.as_ref().map(|r| r.zone.clone()).or(asked.zone.clone()).unwrap_or_default(),
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render(
        status,
        "reports.html",
        Some(&viewer),
        context! {
            page => "reports",
            form,
            channels,
            people,
            report => shown,
            export,
            error,
        },
    )
}

/// What the page shows of `report`: figures as people read them, the charts, the tables.
fn shown(report: &Report) -> Value {
    let percent = |v: Option<f64>| v.map(|v| format!("{:.0}%", v * 100.0));
    let time = |v: Option<f64>| v.map(charts::duration);
    let days: Vec<DayBar> = report
        .days
        .iter()
        .map(|d| DayBar {
            label: format!("{} {}", d.date.day(), d.date.format("%b")),
            long: d.date.format("%a %-d %b %Y").to_string(),
            lower: d.bot_only,
            total: d.conversations,
        })
        .collect();
    let daily = charts::daily(
        "chart-days",
        "Conversations per day",
        &format!(
            "{} conversations from {} to {}; the bot answered {} of them alone ({}).",
            report.conversations,
            report.from,
            report.to,
            report.bot_only,
            percent(report.bot_only_share).unwrap_or_else(|| "none".into()),
        ),
        &days,
        "answered by the bot alone",
        "with a person or escalated",
    );
    let timing = |label: &str, v: Option<f64>, class: &'static str| Bar {
        label: label.to_string(),
        value: v.unwrap_or(0.0),
        shown: time(v).unwrap_or_else(|| "none".into()),
        class,
    };
    let times = [
        timing(
            "First response, median",
            report.first_response.median_secs,
            "bar-median",
        ),
        timing(
            "First response, p90",
            report.first_response.p90_secs,
            "bar-p90",
        ),
        timing(
            "Resolution, median",
            report.resolution.median_secs,
            "bar-median",
        ),
        timing("Resolution, p90", report.resolution.p90_secs, "bar-p90"),
    ];
    let times_chart = charts::horizontal(
        "chart-times",
        "People's response and resolution times",
        &format!(
            "First response: median {}, 90th percentile {} ({} measured). Resolution: median {}, \
             90th percentile {} ({} resolved).",
            time(report.first_response.median_secs).unwrap_or_else(|| "none".into()),
            time(report.first_response.p90_secs).unwrap_or_else(|| "none".into()),
            report.first_response.count,
            time(report.resolution.median_secs).unwrap_or_else(|| "none".into()),
            time(report.resolution.p90_secs).unwrap_or_else(|| "none".into()),
            report.resolution.count,
        ),
        &times,
    );
    let reasons: Vec<Bar> = report
        .escalations
        .iter()
        .map(|r| Bar {
            label: r.reason.describe().to_string(),
            value: r.count as f64,
            shown: r.count.to_string(),
            class: "bar-reason",
        })
        .collect();
    let reasons_chart = (!reasons.is_empty()).then(|| {
        charts::horizontal(
            "chart-reasons",
            "Escalations by reason",
            &format!(
                "{} escalations: {}.",
                report.escalations_total,
                reasons
                    .iter()
                    .map(|b| format!("{} {}", b.shown, b.label))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &reasons,
        )
    });
    let scores: Vec<Bar> = report
        .csat
        .scores
        .iter()
        .enumerate()
        .rev()
        .map(|(i, n)| Bar {
            label: format!("{} - {}", i + 1, SCORE_NAMES[i]),
            value: *n as f64,
            shown: n.to_string(),
            class: if i >= 3 {
                "bar-good"
            } else if i == 2 {
                "bar-neutral"
            } else {
                "bar-poor"
            },
        })
        .collect();
    let average = report.csat.average.map(|a| format!("{a:.1}"));
    let csat_chart = (report.csat.answered > 0).then(|| {
        charts::horizontal(
            "chart-csat",
            "Satisfaction scores",
            &format!(
                "{} answers to {} surveys, average {} of 5; {} scored 4 or 5.",
                report.csat.answered,
                report.csat.sent,
                average.clone().unwrap_or_default(),
                percent(report.csat.satisfied_share).unwrap_or_default(),
            ),
            &scores,
        )
    });
    context! {
        from => report.from.to_string(),
        to => report.to.to_string(),
        zone => report.zone,
        conversations => report.conversations,
        bot_only => report.bot_only,
        bot_share => percent(report.bot_only_share),
        first_median => time(report.first_response.median_secs),
        first_p90 => time(report.first_response.p90_secs),
        first_count => report.first_response.count,
        resolution_median => time(report.resolution.median_secs),
        resolution_p90 => time(report.resolution.p90_secs),
        resolution_count => report.resolution.count,
        escalations_total => report.escalations_total,
        csat_sent => report.csat.sent,
        csat_answered => report.csat.answered,
        csat_average => average,
        csat_satisfied => percent(report.csat.satisfied_share),
        daily,
        times_chart,
        reasons_chart,
        csat_chart,
        days => report.days.iter().map(|d| context! {
            date => d.date.format("%a %-d %b %Y").to_string(),
            conversations => d.conversations,
            bot_only => d.bot_only,
            escalations => d.escalations,
        }).collect::<Vec<_>>(),
        times => times.iter().map(|b| context! { label => b.label, shown => b.shown }).collect::<Vec<_>>(),
        reasons => reasons.iter().map(|b| context! { label => b.label, shown => b.shown }).collect::<Vec<_>>(),
        scores => scores.iter().map(|b| context! { label => b.label, shown => b.shown }).collect::<Vec<_>>(),
    }
}

/// How the scores are named on the page (the survey's own titles are the agent's).
const SCORE_NAMES: [&str; 5] = ["Poor", "Fair", "Good", "Very good", "Excellent"];

async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let viewer = match page_viewer(&state, &headers, Roles::ANY, "/reports").await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let ws = viewer.caller.workspace;
    let store = state.store.as_ref();
    let report = match reports::requested(store, ws, &request(&params), chrono::Utc::now()).await {
        Ok(report) => report,
        Err(e) => return error_page(Some(&viewer), e.into()),
    };
    match reports::csv(&report) {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"palaver-report-{}-{}.csv\"",
                        report.from, report.to
                    ),
                ),
            ],
            body,
        )
            .into_response(),
        Err(e) => error_page(Some(&viewer), ApiError::Internal(Box::new(e))),
    }
}

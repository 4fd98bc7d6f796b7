//! Inbox figures: how long the conversation list, its filters (a label among them) and its
//! search take with many conversations in the store. A store is filled through the same intake a webhook uses (the group commit,
//! its events and jobs), then each inbox query is timed three ways: the store's query alone,
//! the JSON API's `GET /api/v1/conversations` and the console's `/inbox` page, both handled
//! in-process by the server's router (server time: from the request to its last body byte, no
//! network). The baseline is the same queries on a small SQLite store filled the same way,
//! measured in the same run. On Postgres, the planner's statistics are refreshed after the fill,
//! as autovacuum would do. The Reports page (every chart over the whole store: the default 30
//! days hold all of it) is timed the same ways, beside the list's first page of the same run.
//! For the reports to have something to measure, the bot answered every other conversation,
//! and a person replied in each escalated one and resolved half of those, whose customers then
//! rated them.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use chrono::{TimeZone, Utc};
use futures::StreamExt;
use http::Request;
use secrecy::SecretString;
use tower::ServiceExt;

use super::pipeline::{latency, Latency};
use super::BenchError;
use crate::channels::ChannelInput;
use crate::channels::GivenCredentials;
use crate::domain::{
    Channel, ConversationId, ConversationStatus, LabelColour, MessageDetails, MessageKind,
    Resolution, Role, UserId, WorkspaceId,
};
use crate::store::{
    ConversationFilter, Delivery, InboundPolicy, NewEscalation, NewInbound, NewOutbound, Store,
};
use crate::{App, Settings};

const KEY: &str = "pk_bench_inbox_operator_key_00001";
const FIRST: &[&str] = &[
    "Ana", "Bruno", "Carla", "Diego", "Elena", "Fabio", "Gabriela", "Hugo", "Ines", "Joao",
    "Karina", "Luis", "Marta", "Nuno", "Olga", "Pedro", "Rita", "Sofia", "Tiago", "Vera",
];
const LAST: &[&str] = &[
    "Almeida",
    "Barbosa",
    "Costa",
    "Duarte",
    "Esteves",
    "Ferreira",
    "Gomes",
    "Henriques",
    "Lopes",
    "Moreira",
    "Nunes",
    "Oliveira",
    "Pereira",
    "Ramos",
    "Silva",
    "Teixeira",
];
/// A word that occurs in exactly one message of the store.
const RARE: &str = "zanzibarquartz";
/// A label on every tenth conversation.
const COMMON_LABEL: &str = "vip";
/// A label on every hundredth conversation.
const RARE_LABEL: &str = "refund";

/// What was measured for one query.
#[derive(Debug, Clone)]
pub struct QueryFigures {
    /// What the query asks.
    pub name: String,
    /// Rows the first page returned.
    pub rows: usize,
    /// The store's query.
    pub store: Latency,
    /// `GET /api/v1/conversations`.
    pub api: Latency,
    /// The console's `/inbox` page.
    pub page: Latency,
    /// The JSON API on the small store.
    pub baseline: Latency,
}

/// What was measured for the Reports page.
#[derive(Debug, Clone)]
pub struct ReportsFigures {
    /// `GET /api/v1/reports` (the default range: every message of the store).
    pub api: Latency,
    /// The console's `/reports` page (the same report drawn as charts).
    pub page: Latency,
    /// The console's page on the small store.
    pub baseline: Latency,
    /// Conversation-days the report counted.
    pub conversations: i64,
}

/// The figures.
#[derive(Debug, Clone)]
pub struct InboxReport {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Conversations in the store.
    pub conversations: usize,
    /// Messages in the store.
    pub messages: usize,
    /// Conversations in the baseline store.
    pub baseline_conversations: usize,
    /// How long filling the large store took.
    pub fill: Duration,
    /// Outbound messages added for the reports (bot and person replies, surveys).
    pub replies: usize,
    /// One row per query.
    pub queries: Vec<QueryFigures>,
    /// The Reports page.
    pub reports: ReportsFigures,
}

impl fmt::Display for InboxReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        writeln!(
            f,
            "inbox on {}: {} conversations, {} messages (filled through the intake in {:.1} s; \
             {:.0} messages/s); baseline: {} conversations",
            self.backend,
            self.conversations,
            self.messages,
            self.fill.as_secs_f64(),
            self.messages as f64 / self.fill.as_secs_f64().max(1e-9),
            self.baseline_conversations,
        )?;
        writeln!(
            f,
            "  server time, ms        rows  store p50  api p50  api p95  api p99  page p50  \
             page p95  page p99  base api p50  api/base"
        )?;
        for q in &self.queries {
            writeln!(
                f,
                "  {:<22} {:>4} {:>10.2} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>9.2} {:>9.2} {:>13.2} {:>8.1}x",
                q.name,
                q.rows,
                ms(q.store.p50),
                ms(q.api.p50),
                ms(q.api.p95),
                ms(q.api.p99),
                ms(q.page.p50),
                ms(q.page.p95),
                ms(q.page.p99),
                ms(q.baseline.p50),
                ms(q.api.p50) / ms(q.baseline.p50).max(1e-6),
            )?;
        }
        let r = &self.reports;
        let list = self.queries.first();
        writeln!(
            f,
            "  reports page ({} conversation-days, {} replies and surveys): page p50 {:.2}  \
             p95 {:.2}  p99 {:.2}  api p50 {:.2}  p95 {:.2}  base page p50 {:.2}  \
             (list first page, same run: page p95 {:.2}, api p95 {:.2}; target: reports p95 \
             under 300 ms)",
            r.conversations,
            self.replies,
            ms(r.page.p50),
            ms(r.page.p95),
            ms(r.page.p99),
            ms(r.api.p50),
            ms(r.api.p95),
            ms(r.baseline.p50),
            list.map_or(0.0, |q| ms(q.page.p95)),
            list.map_or(0.0, |q| ms(q.api.p95)),
        )?;
        let worst = self
            .queries
            .iter()
            .map(|q| q.api.p95.max(q.page.p95))
            .max()
            .unwrap_or_default();
        let worst_tail = self
            .queries
            .iter()
            .map(|q| q.api.p99.max(q.page.p99))
            .max()
            .unwrap_or_default();
        write!(
            f,
            "  slowest p95 of the list, search and label filter (api or page): {:.2} ms \
             (target: at most 50 ms); slowest p99 {:.2} ms",
            ms(worst),
            ms(worst_tail)
        )
    }
}

/// One inbox query: the console's query string (the API takes the same names).
struct Query {
    name: &'static str,
    params: String,
}

/// The store's filter for `params` (the same parsing the API and the console do).
fn filter(params: &str, channels: &[Channel], owner: UserId) -> ConversationFilter {
    let mut f = ConversationFilter {
        limit: 50,
        ..Default::default()
    };
    for (k, v) in form_urlencoded::parse(params.as_bytes()) {
        match &*k {
            "status" if v != "snoozed" => f.status = v.parse().ok(),
            "channel" => {
                f.channel_id = channels
                    .iter()
                    .find(|c| c.id.to_string() == v)
                    .map(|c| c.id)
            }
            "status" => f.snoozed = Some(true),
            "conversation_label" => f.conversation_label = Some(v.into_owned()),
            "q" => f.search = Some(v.into_owned()),
            "unread" => f.unread = v == "true",
            "assignee" if v == "me" => f.assignee = Some(Some(owner)),
            "offset" => f.offset = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    f
}

fn queries(channels: &[Channel], conversations: usize) -> Vec<Query> {
    let last = conversations.saturating_sub(1);
    vec![
        Query {
            name: "first page",
            params: String::new(),
        },
        Query {
            name: "page 20 (offset 950)",
            params: "offset=950".into(),
        },
        Query {
            name: "escalated",
            params: "status=escalated".into(),
        },
        Query {
            name: "unread",
            params: "unread=true".into(),
        },
        Query {
            name: "assigned to me",
            params: "assignee=me".into(),
        },
        Query {
            name: "label, 10%",
            params: format!("conversation_label={COMMON_LABEL}"),
        },
        Query {
            name: "label, 1%",
            params: format!("conversation_label={RARE_LABEL}"),
        },
        Query {
            name: "snoozed, 1%",
            params: "status=snoozed".into(),
        },
        Query {
            name: "one channel",
            params: format!("channel={}", channels[1].id),
        },
        Query {
            name: "search a name",
            params: format!("q={}", name(last).replace(' ', "+")),
        },
        Query {
            name: "search a number",
            params: format!("q={}", &number(last)[4..]),
        },
        Query {
            name: "search a common word",
            params: "q=recipe".into(),
        },
        Query {
            name: "search a rare word",
            params: format!("q={RARE}"),
        },
        Query {
            name: "search, no match",
            params: "q=nothing+matches+this".into(),
        },
    ]
}

fn name(i: usize) -> String {
    format!(
        "{} {} {}",
        FIRST[i % FIRST.len()],
        LAST[(i / FIRST.len()) % LAST.len()],
        i
    )
}

fn number(i: usize) -> String {
    format!("3519{:08}", 10_000_000 + i * 7_919 % 90_000_000)
}

/// An application on its own store with two channels, an owner signed in (session token) and
/// `conversations` conversations of `per_conversation` customer messages each.
struct Filled {
    app: Arc<App>,
    channels: Vec<Channel>,
    owner: UserId,
    session: String,
    fill: Duration,
    messages: usize,
    replies: usize,
}

async fn filled(
    settings: &Settings,
    database_url: Option<&str>,
    scratch: &std::path::Path,
    conversations: usize,
    per_conversation: usize,
) -> Result<Filled, BenchError> {
    let setup = |e: &dyn fmt::Display| BenchError::Setup(e.to_string());
    let mut s = settings.clone();
    s.data.dir = scratch.to_path_buf();
    s.database.url = database_url.map(|u| SecretString::from(u.to_string()));
    s.server.admin_api_key = Some(SecretString::from(KEY.to_string()));
    let app = super::app(s).await?;
    let mut channels = Vec::new();
    for (i, phone) in ["100000000000031", "100000000000032"].iter().enumerate() {
        channels.push(
            app.channels
                .create(ChannelInput {
                    workspace_id: WorkspaceId::DEFAULT,
                    name: format!("Shop line {}", i + 1),
                    provider: crate::domain::ProviderKind::Meta,
                    route_key: phone.to_string(),
                    agent_id: None,
                    settings: Default::default(),
                    graph_version: None,
                    credentials: GivenCredentials::from_pairs([
                        ("access_token", "unused"),
                        ("app_secret", "unused"),
                        ("verify_token", "unused"),
                    ]),
                    create_instance: false,
                })
                .await
                .map_err(|e| {
                    BenchError::Setup(format!("{e} (the benchmark needs an empty database)"))
                })?,
        );
    }
    let store: &dyn Store = app.store.as_ref();
    let token = crate::accounts::people::setup_token(store)
        .await
        .map_err(|e| setup(&e))?
        .ok_or_else(|| BenchError::Setup("the database already has users".into()))?;
    let signed = crate::accounts::people::complete_setup(
        store,
        &app.settings.accounts,
        &token,
        "owner@bench.example",
        "Bench Owner",
        "bench-owner-password",
    )
    .await
    .map_err(|e| setup(&e))?;

    // Customer messages, through the intake's group commit, many at a time as webhooks come.
    let total = conversations * per_conversation;
    let texts = super::embed::generate_sentences(total, 10);
    let policy = InboundPolicy {
        debounce: Duration::ZERO,
        max_delay: Duration::ZERO,
        idle_reset: Duration::from_secs(24 * 3600),
        limits: Default::default(),
        schedule: true,
    };
    let start = Instant::now();
    let epoch = Utc
        .timestamp_opt(1_780_000_000, 0)
        .single()
        .unwrap_or_else(Utc::now);
    let results: Vec<Result<ConversationId, String>> = futures::stream::iter(0..total)
        .map(|n| {
            // Round by round, so activity interleaves conversations as it does in real life.
            let (round, i) = (n / conversations, n % conversations);
            let mut text = texts[n].clone();
            if n == total / 2 {
                text = format!("{text} {RARE}");
            }
            let channel = channels[i % channels.len()].clone();
            let app = app.clone();
            async move {
                let inbound = NewInbound {
                    provider_message_id: format!("wamid.BENCH.{n}"),
                    from: number(i),
                    reply_to: None,
                    user_id: None,
                    contact_name: Some(name(i)),
                    kind: MessageKind::Text,
                    text: Some(text),
                    details: MessageDetails::default(),
                    sent_at: epoch + chrono::Duration::seconds(n as i64),
                };
                match app.store.record_inbound(&channel, inbound, policy).await {
                    Ok(crate::store::RecordedInbound::New { conversation, .. }) => {
                        Ok(conversation.id)
                    }
                    Ok(_) => Err(format!("message {n} ({round}) was a duplicate")),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    let mut ids = Vec::with_capacity(conversations);
    for r in results {
        let id = r.map_err(BenchError::Setup)?;
        if !ids.contains(&id) && ids.len() < conversations {
            ids.push(id);
        }
    }
    // Some conversations escalated and assigned, a third read by a person.
    let states: Vec<Result<(), String>> = futures::stream::iter(ids.iter().copied().enumerate())
        .map(|(i, id)| {
            let app = app.clone();
            let owner = signed.user.id;
            async move {
                let store = app.store.as_ref();
                if i % 20 == 0 {
                    store
                        .open_escalation(
                            id,
                            NewEscalation {
                                reason: crate::domain::EscalationReason::HumanRequest,
                                detail: None,
                                message_id: None,
                            },
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    store
                        .assign_conversation(id, Some(owner))
                        .await
                        .map_err(|e| e.to_string())?;
                } else if i % 50 == 1 {
                    store
                        .set_conversation_status(id, ConversationStatus::Resolved, None)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                if i % 3 == 0 {
                    store.mark_read(id).await.map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for s in states {
        s.map_err(BenchError::Setup)?;
    }
    // Replies, for the reports: the bot answered every other conversation; in each escalated
    // one a person replied, and half of those were resolved, sent the survey and rated.
    let replies: Vec<Result<usize, String>> =
        futures::stream::iter(ids.iter().copied().enumerate())
            .map(|(i, id)| {
                let app = app.clone();
                let owner = signed.user.id;
                let channels = channels.clone();
                async move {
                    let store = app.store.as_ref();
                    let err = |e: crate::store::StoreError| e.to_string();
                    let outbound = |role: Role, text: &str, by: Option<UserId>| NewOutbound {
                        conversation_id: id,
                        role,
                        kind: MessageKind::Text,
                        text: Some(text.to_string()),
                        details: MessageDetails::default(),
                        generation: None,
                        sent_by: by,
                        idempotency_key: None,
                        handled: Vec::new(),
                        delivery: Delivery::RecordOnly,
                    };
                    let mut added = 0;
                    if i % 2 == 1 {
                        store
                            .record_outbound(outbound(Role::Bot, "Here is what I found.", None))
                            .await
                            .map_err(err)?;
                        added += 1;
                    }
                    if i % 20 == 0 {
                        let reply = outbound(Role::Agent, "Let me check that.", Some(owner));
                        store.record_outbound(reply).await.map_err(err)?;
                        added += 1;
                    }
                    if i % 40 == 0 {
                        let closed = store
                            .close_escalation(id, Resolution::Resolved, "Bench Owner", Some(owner))
                            .await
                            .map_err(err)?;
                        let conversation = store
                            .conversation(id)
                            .await
                            .map_err(err)?
                            .ok_or_else(|| format!("conversation {id} vanished"))?;
                        let csat = crate::domain::CsatSettings::default();
                        let mut survey = outbound(Role::System, &csat.question, None);
                        survey.details.choices = Some(csat.choices());
                        let (survey, _, _) = store
                            .send_survey(&conversation, closed.map(|e| e.id), Some(owner), survey)
                            .await
                            .map_err(err)?;
                        added += 1;
                        let channel = channels
                            .iter()
                            .find(|c| c.id == conversation.channel_id)
                            .ok_or("a conversation of an unknown channel")?;
                        let score = 1 + (i / 40 % 5) as u8;
                        let answer = NewInbound {
                            provider_message_id: format!("wamid.BENCH.csat.{i}"),
                            from: conversation.contact.wa_id.clone(),
                            reply_to: None,
                            user_id: None,
                            contact_name: None,
                            kind: MessageKind::Text,
                            text: Some(score.to_string()),
                            details: MessageDetails::default(),
                            sent_at: Utc::now(),
                        };
                        if let crate::store::RecordedInbound::New { message, .. } = store
                            .record_inbound(channel, answer, policy)
                            .await
                            .map_err(err)?
                        {
                            store
                                .answer_survey(&survey, score, message.id, true)
                                .await
                                .map_err(err)?;
                            added += 1;
                        }
                    }
                    Ok(added)
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
    let mut added = 0;
    for r in replies {
        added += r.map_err(BenchError::Setup)?;
    }
    // Labels on a share of the conversations (a tenth, a hundredth), and a hundredth snoozed.
    let store: &dyn Store = app.store.as_ref();
    let common = store
        .create_label(WorkspaceId::DEFAULT, COMMON_LABEL, LabelColour::Green)
        .await
        .map_err(|e| setup(&e))?;
    let rare = store
        .create_label(WorkspaceId::DEFAULT, RARE_LABEL, LabelColour::Red)
        .await
        .map_err(|e| setup(&e))?;
    let later = Utc::now() + chrono::Duration::days(7);
    let labelled: Vec<Result<(), String>> = futures::stream::iter(ids.iter().copied().enumerate())
        .map(|(i, id)| {
            let app = app.clone();
            let (common, rare) = (common.clone(), rare.clone());
            async move {
                let store = app.store.as_ref();
                let err = |e: crate::store::StoreError| e.to_string();
                if i % 10 == 3 {
                    store
                        .set_conversation_label(id, &common, true)
                        .await
                        .map_err(err)?;
                }
                if i % 100 == 7 {
                    store
                        .set_conversation_label(id, &rare, true)
                        .await
                        .map_err(err)?;
                }
                if i % 100 == 11 {
                    store
                        .snooze_conversation(id, Some(later), Default::default())
                        .await
                        .map_err(err)?;
                }
                Ok(())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for l in labelled {
        l.map_err(BenchError::Setup)?;
    }
    // As autovacuum would soon after such a load: plans then see the table's real size.
    app.store
        .refresh_statistics()
        .await
        .map_err(|e| setup(&e))?;
    Ok(Filled {
        owner: signed.user.id,
        session: signed.token,
        app,
        channels,
        fill: start.elapsed(),
        messages: total,
        replies: added,
    })
}

/// Server time of `GET uri` through the router; the rows in a JSON list answer.
async fn request(
    router: &axum::Router,
    uri: &str,
    auth: (&str, String),
) -> Result<(Duration, usize), BenchError> {
    let req = Request::get(uri)
        .header(auth.0, auth.1)
        .body(Body::empty())
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let started = Instant::now();
    let response = router
        .clone()
        .oneshot(req)
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let elapsed = started.elapsed();
    if !status.is_success() {
        return Err(BenchError::Setup(format!(
            "GET {uri} answered {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    let rows = serde_json::from_slice::<Vec<serde_json::Value>>(&body).map_or(0, |v| v.len());
    Ok((elapsed, rows))
}

/// Times `repeats` runs of `uri` (after one warm-up).
async fn timed(
    router: &axum::Router,
    uri: &str,
    auth: impl Fn() -> (&'static str, String),
    repeats: usize,
) -> Result<(Latency, usize), BenchError> {
    let (_, rows) = request(router, uri, auth()).await?;
    let mut samples = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        samples.push(request(router, uri, auth()).await?.0);
    }
    Ok((latency(samples), rows))
}

/// Fills a store with `conversations` conversations of `per_conversation` messages (and a
/// baseline store with `baseline` conversations), then times each inbox query `repeats` times.
pub async fn run(
    settings: &Settings,
    database_url: Option<&str>,
    conversations: usize,
    per_conversation: usize,
    baseline: usize,
    repeats: usize,
) -> Result<InboxReport, BenchError> {
    let scratch = super::scratch_dir(&settings.data.dir, "inbox")?;
    std::fs::create_dir_all(scratch.join("small"))?;
    std::fs::create_dir_all(scratch.join("large"))?;
    // The baseline always runs on its own SQLite file: a Postgres URL is the large store's.
    let small = filled(
        settings,
        None,
        &scratch.join("small"),
        baseline,
        per_conversation,
    )
    .await?;
    eprintln!("filling {conversations} conversations of {per_conversation} messages...");
    let large = filled(
        settings,
        database_url,
        &scratch.join("large"),
        conversations,
        per_conversation,
    )
    .await?;
    let backend = format!("{:?}", large.app.store.backend()).to_lowercase();
    let small_router = crate::server::router(small.app.clone());
    let router = crate::server::router(large.app.clone());
    let bearer = || ("authorization", format!("Bearer {KEY}"));
    let cookie = |token: &str| {
        let token = token.to_string();
        move || {
            (
                "cookie",
                format!("{}={token}", crate::http::auth::SESSION_COOKIE),
            )
        }
    };
    let mut figures = Vec::new();
    for q in queries(&large.channels, conversations) {
        let f = filter(&q.params, &large.channels, large.owner);
        let mut samples = Vec::with_capacity(repeats);
        for _ in 0..=repeats {
            let started = Instant::now();
            large
                .app
                .store
                .list_conversations(WorkspaceId::DEFAULT, &f)
                .await
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            samples.push(started.elapsed());
        }
        samples.remove(0);
        let (api, rows) = timed(
            &router,
            &format!(
                "/api/v1/conversations?{}",
                api_params(&q.params, large.owner)
            ),
            bearer,
            repeats,
        )
        .await?;
        let (page, _) = timed(
            &router,
            &format!("/inbox?{}", q.params),
            cookie(&large.session),
            repeats,
        )
        .await?;
        let small_params = q.params.replace(
            &large.channels[1].id.to_string(),
            &small.channels[1].id.to_string(),
        );
        let (base, _) = timed(
            &small_router,
            &format!(
                "/api/v1/conversations?{}",
                api_params(&small_params, small.owner)
            ),
            bearer,
            repeats,
        )
        .await?;
        figures.push(QueryFigures {
            name: q.name.to_string(),
            rows,
            store: latency(samples),
            api,
            page,
            baseline: base,
        });
    }
    // The Reports page: the default range (the last 30 days) holds every message.
    let reports_uri = "/reports?zone=UTC";
    let (page, _) = timed(&router, reports_uri, cookie(&large.session), repeats).await?;
    let (api, _) = timed(&router, "/api/v1/reports?zone=UTC", bearer, repeats).await?;
    let (base, _) = timed(&small_router, reports_uri, cookie(&small.session), repeats).await?;
    let counted = report_conversations(&router, bearer().1).await?;
    let report = InboxReport {
        backend,
        conversations,
        messages: large.messages,
        baseline_conversations: baseline,
        fill: large.fill,
        replies: large.replies,
        queries: figures,
        reports: ReportsFigures {
            api,
            page,
            baseline: base,
            conversations: counted,
        },
    };
    drop((small, large, router, small_router));
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(report)
}

/// The conversation-days `GET /api/v1/reports` counts (a check that the report read the store).
async fn report_conversations(router: &axum::Router, auth: String) -> Result<i64, BenchError> {
    let req = Request::get("/api/v1/reports?zone=UTC")
        .header("authorization", auth)
        .body(Body::empty())
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let response = router
        .clone()
        .oneshot(req)
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let report: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| BenchError::Setup(e.to_string()))?;
    Ok(report["conversations"].as_i64().unwrap_or(0))
}

/// The API's names for the console's query: `me` is the operator key's nobody, so the owner's
/// id; the console's "Snoozed" status is the API's `snoozed=true`.
fn api_params(params: &str, owner: UserId) -> String {
    params
        .replace("assignee=me", &format!("assignee={owner}"))
        .replace("status=snoozed", "snoozed=true")
}

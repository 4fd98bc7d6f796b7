//! The web console: server-rendered pages for people (sign-in, first-run set-up, the inbox and
//! a conversation), served by `palaver serve` itself at `/`. Pages call the same library
//! functions as the JSON API ([`crate::inbox`], [`crate::accounts::people`]) under the same
//! roles. Every form that changes something carries the session's CSRF token; responses carry
//! a strict Content-Security-Policy (nothing but this origin's own files, no inline script or
//! style). Without JavaScript every page works; `ui/static/console.js` adds Enter-to-send and
//! live updates from the event stream, with polling when the stream is unavailable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::extract::{ConnectInfo, Extension, Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::{context, Environment, Value};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::accounts::{people, Caller, Roles};
use crate::domain::{ConversationId, ConversationStatus, EventKind, Resolution, User};
use crate::http::api::people::{secure, set_cookie};
use crate::http::auth::{session_caller, session_token};
use crate::http::{ApiError, AppState};
use crate::inbox;
use crate::store::ConversationFilter;

/// Conversations per inbox page.
const PAGE: u32 = 50;
/// Messages shown of a conversation (the newest).
const MESSAGES: u32 = 200;

/// The strict policy every console response carries.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
    media-src 'self' blob:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/inbox") }))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/setup", get(setup_page).post(setup))
        .route("/inbox", get(inbox_page))
        .route("/inbox/{conversation}", get(conversation_page))
        .route("/inbox/{conversation}/reply", post(reply))
        .route("/inbox/{conversation}/assign", post(assign))
        .route("/inbox/{conversation}/resolve", post(resolve))
        .route("/inbox/{conversation}/handback", post(hand_back))
        .route("/assets/console.css", get(stylesheet))
        .route("/assets/console.js", get(script))
        .layer(middleware::from_fn(security_headers))
}

async fn security_headers(req: axum::extract::Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../ui/static/console.css"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../ui/static/console.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Pages name assets with the release's version, so a new release fetches anew.
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            (
                "layout.html",
                include_str!("../../ui/templates/layout.html"),
            ),
            (
                "sign_in.html",
                include_str!("../../ui/templates/sign_in.html"),
            ),
            ("setup.html", include_str!("../../ui/templates/setup.html")),
            ("inbox.html", include_str!("../../ui/templates/inbox.html")),
            (
                "conversation.html",
                include_str!("../../ui/templates/conversation.html"),
            ),
            ("error.html", include_str!("../../ui/templates/error.html")),
        ] {
            env.add_template(name, source)
                .expect("the console's templates are valid");
        }
        env.add_filter("when", when);
        env
    })
}

/// A stored time (RFC 3339) as people read it.
fn when(value: String) -> String {
    chrono::DateTime::parse_from_rfc3339(&value)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or(value)
}

/// A page rendered with the layout's common values.
fn render(status: StatusCode, name: &str, viewer: Option<&Viewer>, page: Value) -> Response {
    let event_types: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    let common = context! {
        version => env!("CARGO_PKG_VERSION"),
        viewer => viewer.map(|v| context! {
            id => v.user.id,
            name => v.user.name,
            role => v.caller.role,
        }),
        csrf => viewer.map(|v| v.csrf.clone()),
        event_types => event_types.join(","),
    };
    let ctx = context! { ..page, ..common };
    match templates().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "cannot render a console page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// An error as a page, with the status the JSON API would answer.
fn error_page(viewer: Option<&Viewer>, e: ApiError) -> Response {
    let status = e.status_code();
    let message = describe(&e);
    if status.is_server_error() {
        tracing::error!(error = %e, "console request failed");
    }
    let heading = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        s if s.is_server_error() => "Something went wrong",
        _ => "That did not work",
    };
    render(status, "error.html", viewer, context! { heading, message })
}

/// What went wrong, for a person: field errors spelled out.
fn describe(e: &ApiError) -> String {
    match e {
        ApiError::Invalid(fields) => fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        e if e.status_code().is_server_error() => {
            "the server could not do this just now; try again in a moment".into()
        }
        e => e.to_string(),
    }
}

/// The signed-in person behind a request.
struct Viewer {
    caller: Caller,
    user: User,
    csrf: String,
}

async fn viewer(state: &AppState, headers: &HeaderMap) -> Result<Option<Viewer>, ApiError> {
    let Some(token) = session_token(headers) else {
        return Ok(None);
    };
    let Some((session, user)) = people::session(state.store.as_ref(), &token).await? else {
        return Ok(None);
    };
    let caller = session_caller(state, headers, &user).await?;
    Ok(Some(Viewer {
        caller,
        user,
        csrf: session.csrf_token,
    }))
}

/// Where a signed-out person is sent: the sign-in page, or set-up when nobody exists yet.
async fn to_sign_in(state: &AppState, next: &str) -> Response {
    match state.store.count_users().await {
        Ok(0) => Redirect::to("/setup").into_response(),
        _ => Redirect::to(&format!("/sign-in?next={}", urlencoding(next))).into_response(),
    }
}

fn urlencoding(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Only a path on this site is followed after sign-in (never `//elsewhere` or a full URL).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/inbox".into(),
    }
}

/// A form that changes something: signed in, with this session's CSRF token.
async fn acting(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Viewer, Response> {
    let viewer = match viewer(state, headers).await {
        Ok(Some(v)) => v,
        Ok(None) => return Err(to_sign_in(state, "/inbox").await),
        Err(e) => return Err(error_page(None, e)),
    };
    let presented = form.get("_csrf").map(String::as_str).unwrap_or("");
    if !bool::from(presented.as_bytes().ct_eq(viewer.csrf.as_bytes())) {
        let e = ApiError::Forbidden(
            "this form is out of date or came from another site; reload the page and try again"
                .into(),
        );
        return Err(error_page(Some(&viewer), e));
    }
    Ok(viewer)
}

#[derive(Debug, Deserialize)]
struct NextParam {
    next: Option<String>,
}

async fn sign_in_page(State(state): State<AppState>, Query(p): Query<NextParam>) -> Response {
    if let Ok(0) = state.store.count_users().await {
        return Redirect::to("/setup").into_response();
    }
    render(
        StatusCode::OK,
        "sign_in.html",
        None,
        context! { next => safe_next(p.next.as_deref()), email => "" },
    )
}

async fn sign_in(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let next = safe_next(form.get("next").map(String::as_str));
    let client = peer.map(|Extension(ConnectInfo(addr))| addr.ip().to_string());
    let signed = people::sign_in(
        state.store.as_ref(),
        &state.settings.accounts,
        field("email"),
        field("password"),
        client.as_deref(),
    )
    .await;
    match signed {
        Ok(signed) => {
            // A session the browser already held is ended: sign-in never keeps a token it was given.
            if let Some(old) = session_token(&headers) {
                let _ = people::sign_out(state.store.as_ref(), &old).await;
            }
            start_session(&state, &headers, &signed.token, &next)
        }
        Err(e) => {
            let e = ApiError::from(e);
            let status = e.status_code();
            render(
                status,
                "sign_in.html",
                None,
                context! { next, email => field("email"), error => describe(&e) },
            )
        }
    }
}

fn start_session(state: &AppState, headers: &HeaderMap, token: &str, next: &str) -> Response {
    let mut response = Redirect::to(next).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(
            token,
            state.settings.accounts.session_ttl_secs as i64,
            secure(state, headers),
        ),
    );
    response
}

async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = acting(&state, &headers, &form).await {
        return refused;
    }
    if let Some(token) = session_token(&headers) {
        if let Err(e) = people::sign_out(state.store.as_ref(), &token).await {
            return error_page(None, e.into());
        }
    }
    let mut response = Redirect::to("/sign-in").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie("", 0, secure(&state, &headers)),
    );
    response
}

#[derive(Debug, Deserialize)]
struct SetupParams {
    token: Option<String>,
}

async fn setup_page(State(state): State<AppState>, Query(p): Query<SetupParams>) -> Response {
    match state.store.count_users().await {
        Ok(0) => render(
            StatusCode::OK,
            "setup.html",
            None,
            context! { token => p.token.unwrap_or_default(), name => "", email => "" },
        ),
        Ok(_) => Redirect::to("/sign-in").into_response(),
        Err(e) => error_page(None, e.into()),
    }
}

async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let done = people::complete_setup(
        state.store.as_ref(),
        &state.settings.accounts,
        field("token").trim(),
        field("email"),
        field("name"),
        field("password"),
    )
    .await;
    match done {
        Ok(signed) => start_session(&state, &headers, &signed.token, "/inbox"),
        Err(e) => {
            let e = ApiError::from(e);
            render(
                e.status_code(),
                "setup.html",
                None,
                context! {
                    token => field("token"), name => field("name"), email => field("email"),
                    error => describe(&e),
                },
            )
        }
    }
}

/// Inbox filters, as the list's form sends them (empty fields mean "any").
#[derive(Debug, Default, Deserialize, serde::Serialize)]
struct InboxParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    unread: Option<String>,
    #[serde(default)]
    page: Option<u32>,
}

async fn inbox_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<InboxParams>,
) -> Response {
    let viewer = match viewer(&state, &headers).await {
        Ok(Some(v)) => v,
        Ok(None) => return to_sign_in(&state, "/inbox").await,
        Err(e) => return error_page(None, e),
    };
    match inbox_list(&state, &viewer, &p).await {
        Ok(page) => render(StatusCode::OK, "inbox.html", Some(&viewer), page),
        Err(e) => error_page(Some(&viewer), e),
    }
}

async fn inbox_list(state: &AppState, viewer: &Viewer, p: &InboxParams) -> Result<Value, ApiError> {
    let status =
        match p.status.as_str() {
            "" => None,
            s => Some(s.parse::<ConversationStatus>().map_err(|_| {
                ApiError::invalid("status", "must be active, escalated or resolved")
            })?),
        };
    let assignee = match p.assignee.as_str() {
        "" => None,
        "none" => Some(None),
        "me" => Some(Some(viewer.user.id)),
        _ => return Err(ApiError::invalid("assignee", "must be me or none")),
    };
    let unread = p
        .unread
        .as_deref()
        .is_some_and(|v| v == "true" || v == "on");
    let page = p.page.unwrap_or(0).min(10_000);
    let q = p.q.trim();
    // One more than a page tells whether there is a next one.
    let mut conversations = state
        .store
        .list_conversations(
            viewer.caller.workspace,
            &ConversationFilter {
                status,
                channel_id: None,
                search: (!q.is_empty()).then(|| q.to_string()),
                assignee,
                unread,
                sandbox: false,
                limit: PAGE + 1,
                offset: page * PAGE,
            },
        )
        .await?;
    let more = conversations.len() > PAGE as usize;
    conversations.truncate(PAGE as usize);
    let link = |page: u32| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [("q", q), ("status", &p.status), ("assignee", &p.assignee)] {
            if !value.is_empty() {
                query.append_pair(key, value);
            }
        }
        if unread {
            query.append_pair("unread", "true");
        }
        if page > 0 {
            query.append_pair("page", &page.to_string());
        }
        let query = query.finish();
        if query.is_empty() {
            "/inbox".to_string()
        } else {
            format!("/inbox?{query}")
        }
    };
    Ok(context! {
        page => "inbox",
        conversations => Value::from_serialize(&conversations),
        filter => context! { q, status => p.status, assignee => p.assignee, unread },
        previous => (page > 0).then(|| link(page - 1)),
        next => more.then(|| link(page + 1)),
    })
}

async fn conversation_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let viewer = match viewer(&state, &headers).await {
        Ok(Some(v)) => v,
        Ok(None) => return to_sign_in(&state, &format!("/inbox/{id}")).await,
        Err(e) => return error_page(None, e),
    };
    match conversation_view(&state, &viewer, &id).await {
        Ok(page) => render(StatusCode::OK, "conversation.html", Some(&viewer), page),
        Err(e) => error_page(Some(&viewer), e),
    }
}

/// The conversation `id` of the viewer's workspace (404 for any other).
async fn find(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
) -> Result<crate::domain::Conversation, ApiError> {
    let id: ConversationId = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no conversation {id}")))?;
    crate::http::api::find_conversation(state, &viewer.caller, id).await
}

async fn conversation_view(state: &AppState, viewer: &Viewer, id: &str) -> Result<Value, ApiError> {
    let conversation = find(state, viewer, id).await?;
    let messages = state
        .store
        .messages(conversation.id, MESSAGES, None)
        .await?;
    let escalations = state.store.escalations(conversation.id).await?;
    let assignee = match conversation.assignee_id {
        Some(user) => state.store.user(user).await?.map(|u| u.name),
        None => None,
    };
    let can_act = Roles::INBOX.allows(viewer.caller.role);
    Ok(context! {
        page => "inbox",
        conversation => Value::from_serialize(&conversation),
        messages => Value::from_serialize(&messages),
        escalations => Value::from_serialize(&escalations),
        assignee,
        can_act,
        // A fresh key per rendered form: sending twice (a double click, a retry) sends once.
        reply_key => people::random_token(),
    })
}

/// A form acting on a conversation: signed in, CSRF checked, allowed to act on the inbox.
async fn act_on(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    id: &str,
) -> Result<(Viewer, crate::domain::Conversation), Response> {
    let viewer = acting(state, headers, form).await?;
    if !Roles::INBOX.allows(viewer.caller.role) {
        let e = ApiError::Forbidden(format!("the {} role may not do this", viewer.caller.role));
        return Err(error_page(Some(&viewer), e));
    }
    match find(state, &viewer, id).await {
        Ok(conversation) => Ok((viewer, conversation)),
        Err(e) => Err(error_page(Some(&viewer), e)),
    }
}

async fn reply(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (viewer, conversation) = match act_on(&state, &headers, &form, &id).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let text = form.get("text").map(String::as_str).unwrap_or("").trim();
    let key = form
        .get("key")
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .map(|k| format!("console:{k}"));
    match inbox::reply(
        state.store.as_ref(),
        &state.channels,
        &viewer.caller,
        &conversation,
        text,
        key.as_deref(),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!("/inbox/{}", conversation.id)).into_response(),
        Err(e) => error_page(Some(&viewer), e.into()),
    }
}

async fn assign(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (viewer, conversation) = match act_on(&state, &headers, &form, &id).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    match inbox::assign(state.store.as_ref(), &conversation, Some(viewer.user.id)).await {
        Ok(_) => Redirect::to(&format!("/inbox/{}", conversation.id)).into_response(),
        Err(e) => error_page(Some(&viewer), e.into()),
    }
}

async fn close(
    state: AppState,
    headers: HeaderMap,
    id: String,
    form: HashMap<String, String>,
    resolution: Resolution,
) -> Response {
    let (viewer, conversation) = match act_on(&state, &headers, &form, &id).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    match inbox::close(
        state.store.as_ref(),
        &viewer.caller,
        &conversation,
        resolution,
    )
    .await
    {
        Ok(_) => Redirect::to(&format!("/inbox/{}", conversation.id)).into_response(),
        Err(e) => error_page(Some(&viewer), e.into()),
    }
}

async fn resolve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    close(state, headers, id, form, Resolution::Resolved).await
}

async fn hand_back(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    close(state, headers, id, form, Resolution::HandedBack).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        for (next, expected) in [
            (Some("/inbox/abc"), "/inbox/abc"),
            (Some("//evil.example/x"), "/inbox"),
            (Some("https://evil.example"), "/inbox"),
            (Some("/\\evil.example"), "/inbox"),
            (None, "/inbox"),
        ] {
            assert_eq!(safe_next(next), expected, "{next:?}");
        }
    }

    #[tokio::test]
    async fn pages_escape_what_they_show() {
        let response = render(
            StatusCode::NOT_FOUND,
            "error.html",
            None,
            context! { heading => "<b>x</b>", message => "<script>alert(1)</script>" },
        );
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(html.contains("&lt;script&gt;alert(1)&lt;"), "{html}");
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("/assets/console.js"));
    }

    #[test]
    fn times_read_as_dates() {
        assert_eq!(when("2026-11-23T10:05:00Z".into()), "2026-11-23 10:05 UTC");
        assert_eq!(when("not a time".into()), "not a time");
    }
}

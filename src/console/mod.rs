//! The web console: server-rendered pages for people, served by `palaver serve` itself at `/`:
//! sign-in, first-run set-up and invitations; the inbox ([`inbox`]); contacts, beside a
//! conversation and on their own page, with their CSV file ([`contacts`]); channels, agents and
//! their knowledge, the sandbox, evals and settings ([`pages`]); reports drawn as SVG
//! ([`reports`]); teams and who gets each channel's escalations ([`teams`]); the questions
//! people had to answer and the FAQ entries proposed from their replies ([`gaps`]); writing first
//! to a customer, and with a template once the 24-hour window has closed ([`outbound`]).
//! Pages read through the same library functions as the JSON API, under the same roles. The
//! inbox's forms post here and call [`crate::inbox`]; the other pages' actions are calls of the
//! JSON API itself from first-party scripts, with the session cookie and its CSRF token
//! (`X-CSRF-Token`), so there is one code path for each change. Every form that changes
//! something carries the session's CSRF token; responses carry a strict Content-Security-Policy
//! (nothing but this origin's own files, no inline script or style). The inbox works without
//! JavaScript; `ui/static/` adds Enter-to-send, live updates from the event stream (polling when
//! it is unavailable) and the other pages' actions.

mod charts;
mod contacts;
mod gaps;
mod inbox;
mod outbound;
mod pages;
mod reference;
mod reports;
mod teams;

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
use crate::domain::{EventKind, User};
use crate::http::api::people::{secure, set_cookie};
use crate::http::auth::{session_caller, session_token};
use crate::http::{ApiError, AppState};

/// Conversations per inbox page.
const PAGE: u32 = 50;

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
        .route(
            "/invitations/accept",
            get(invitation_page).post(accept_invitation),
        )
        .route("/reference", get(reference::reference))
        .route("/inbox", get(inbox::inbox_page))
        .route("/inbox/{conversation}", get(inbox::conversation_page))
        .route(
            "/inbox/{conversation}/reply",
            post(inbox::reply).layer(axum::extract::DefaultBodyLimit::max(
                crate::http::api::conversations::REPLY_BODY_LIMIT,
            )),
        )
        .route("/inbox/{conversation}/notes", post(inbox::add_note))
        .route("/inbox/{conversation}/faq", post(inbox::propose_faq))
        .route("/inbox/{conversation}/assign", post(inbox::assign))
        .route("/inbox/{conversation}/resolve", post(inbox::resolve))
        .route("/inbox/{conversation}/handback", post(inbox::hand_back))
        .route("/inbox/{conversation}/labels/add", post(inbox::add_label))
        .route(
            "/inbox/{conversation}/labels/remove",
            post(inbox::remove_label),
        )
        .route("/inbox/{conversation}/snooze", post(inbox::snooze))
        .route("/inbox/{conversation}/wake", post(inbox::wake))
        .route("/inbox/{conversation}/template", post(inbox::send_template))
        .merge(outbound::routes())
        .merge(contacts::routes())
        .merge(pages::routes())
        .merge(reports::routes())
        .merge(teams::routes())
        .merge(gaps::routes())
        .route("/assets/{name}", get(asset))
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

/// The console's own files, built into the binary.
const ASSETS: &[(&str, &str)] = &[
    ("console.css", include_str!("../../ui/static/console.css")),
    ("console.js", include_str!("../../ui/static/console.js")),
    ("api.js", include_str!("../../ui/static/api.js")),
    ("channels.js", include_str!("../../ui/static/channels.js")),
    ("agent.js", include_str!("../../ui/static/agent.js")),
    ("sandbox.js", include_str!("../../ui/static/sandbox.js")),
    ("evals.js", include_str!("../../ui/static/evals.js")),
    ("inbox.js", include_str!("../../ui/static/inbox.js")),
    ("reports.js", include_str!("../../ui/static/reports.js")),
];

async fn asset(Path(name): Path<String>) -> Response {
    let Some((_, body)) = ASSETS.iter().find(|(n, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let content_type = if name.ends_with(".css") {
        "text/css; charset=utf-8"
    } else {
        "text/javascript; charset=utf-8"
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Pages name assets with the release's version, so a new release fetches anew.
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        *body,
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
                "inbox_list.html",
                include_str!("../../ui/templates/inbox_list.html"),
            ),
            (
                "conversation.html",
                include_str!("../../ui/templates/conversation.html"),
            ),
            ("error.html", include_str!("../../ui/templates/error.html")),
            ("gaps.html", include_str!("../../ui/templates/gaps.html")),
            (
                "contacts.html",
                include_str!("../../ui/templates/contacts.html"),
            ),
            (
                "contact.html",
                include_str!("../../ui/templates/contact.html"),
            ),
            (
                "contact_panel.html",
                include_str!("../../ui/templates/contact_panel.html"),
            ),
            (
                "invitation.html",
                include_str!("../../ui/templates/invitation.html"),
            ),
            (
                "channels.html",
                include_str!("../../ui/templates/channels.html"),
            ),
            (
                "agent_select.html",
                include_str!("../../ui/templates/agent_select.html"),
            ),
            (
                "agents.html",
                include_str!("../../ui/templates/agents.html"),
            ),
            ("agent.html", include_str!("../../ui/templates/agent.html")),
            (
                "sandbox.html",
                include_str!("../../ui/templates/sandbox.html"),
            ),
            ("evals.html", include_str!("../../ui/templates/evals.html")),
            ("eval.html", include_str!("../../ui/templates/eval.html")),
            (
                "eval_case.html",
                include_str!("../../ui/templates/eval_case.html"),
            ),
            (
                "settings.html",
                include_str!("../../ui/templates/settings.html"),
            ),
            (
                "reference.html",
                include_str!("../../ui/templates/reference.html"),
            ),
            (
                "reports.html",
                include_str!("../../ui/templates/reports.html"),
            ),
            ("teams.html", include_str!("../../ui/templates/teams.html")),
            (
                "new_conversation.html",
                include_str!("../../ui/templates/new_conversation.html"),
            ),
            (
                "template_form.html",
                include_str!("../../ui/templates/template_form.html"),
            ),
        ] {
            env.add_template(name, source)
                .expect("the console's templates are valid");
        }
        env.add_filter("when", when);
        env.add_filter("reason", reason);
        env
    })
}

/// An escalation reason's code in words (other text as it is).
fn reason(value: String) -> String {
    value
        .parse::<crate::domain::EscalationReason>()
        .map(|r| r.describe().to_string())
        .unwrap_or(value)
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
        // What the viewer's role opens, for the navigation.
        can => viewer.map(|v| context! {
            inbox => Roles::INBOX.allows(v.caller.role),
            author => Roles::AUTHORS.allows(v.caller.role),
            own => Roles::OWNER.allows(v.caller.role),
        }),
        csrf => viewer.map(|v| v.csrf.clone()),
        last_event => viewer.map(|v| v.last_event),
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
    /// The workspace's newest event when the page was read: the page's event stream starts
    /// after it, so nothing that happens between reading and listening is missed.
    last_event: i64,
}

async fn viewer(state: &AppState, headers: &HeaderMap) -> Result<Option<Viewer>, ApiError> {
    let Some(token) = session_token(headers) else {
        return Ok(None);
    };
    let Some((session, user)) = people::session(state.store.as_ref(), &token).await? else {
        return Ok(None);
    };
    let caller = session_caller(state, headers, &user).await?;
    let last_event = state.store.last_event_id(caller.workspace).await?;
    Ok(Some(Viewer {
        caller,
        user,
        csrf: session.csrf_token,
        last_event,
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
/// Browsers drop tabs and line breaks from a `Location` ("/\t/evil.example" is read as
/// "//evil.example") and a line break cannot be sent in a header at all, so a path holds
/// visible ASCII only (anything else arrives percent-encoded from a real link).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.chars().all(|c| c.is_ascii_graphic()) =>
        {
            n.into()
        }
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

/// The signed-in viewer of a page that `roles` may open: others are sent to sign in, or told
/// their role does not open it.
async fn page_viewer(
    state: &AppState,
    headers: &HeaderMap,
    roles: Roles,
    path: &str,
) -> Result<Viewer, Response> {
    let viewer = match viewer(state, headers).await {
        Ok(Some(v)) => v,
        Ok(None) => return Err(to_sign_in(state, path).await),
        Err(e) => return Err(error_page(None, e)),
    };
    if !roles.allows(viewer.caller.role) {
        let e = ApiError::Forbidden(format!(
            "the {} role does not open this page",
            viewer.caller.role
        ));
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
    match state.store.count_instance_owners().await {
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

#[derive(Debug, Deserialize)]
struct InvitationParams {
    token: Option<String>,
}

/// The page an invitation's link opens: a name and a password (or the password of the account
/// the email already has) join the workspace.
async fn invitation_page(Query(p): Query<InvitationParams>) -> Response {
    render(
        StatusCode::OK,
        "invitation.html",
        None,
        context! { token => p.token.unwrap_or_default(), name => "" },
    )
}

async fn accept_invitation(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let name = match field("name").trim() {
        "" => "New member",
        name => name,
    };
    let accepted = people::accept_invitation(
        state.store.as_ref(),
        &state.settings.accounts,
        field("token").trim(),
        name,
        field("password"),
    )
    .await;
    match accepted {
        Ok(signed) => start_session(&state, &headers, &signed.token, "/inbox"),
        Err(e) => {
            let e = ApiError::from(e);
            render(
                e.status_code(),
                "invitation.html",
                None,
                context! { token => field("token"), name => field("name"), error => describe(&e) },
            )
        }
    }
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
            // Browsers drop tabs and line breaks: "/\t/evil" is "//evil" to them, and a line
            // break in a Location header cannot be sent (it answered 500).
            (Some("/\t/evil.example"), "/inbox"),
            (Some("/\n/x"), "/inbox"),
            (Some("/\r\n/x"), "/inbox"),
            (Some("/ /evil.example"), "/inbox"),
            (
                Some("/inbox?filter=open&q=caf%C3%A9"),
                "/inbox?filter=open&q=caf%C3%A9",
            ),
            (None, "/inbox"),
        ] {
            assert_eq!(safe_next(next), expected, "{next:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        /// Whatever `next` a link carries, sign-in sends the browser to a path of this site.
        #[test]
        fn sign_in_never_leaves_the_site(next in "\\PC{0,12}|/[\\t\\n\\r /\\\\a-z%.:]{0,12}") {
            let to = safe_next(Some(&next));
            proptest::prop_assert!(to.starts_with('/') && !to.starts_with("//"), "{to:?}");
            proptest::prop_assert!(!to.contains('\\'), "{to:?}");
            proptest::prop_assert!(to.chars().all(|c| c.is_ascii_graphic()), "{to:?}");
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

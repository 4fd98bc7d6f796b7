//! Contacts in the console: the Contacts page (search by name or number, pages, the file out
//! and in), one contact's page, and the contact panel beside an open conversation, whose form
//! changes the contact. Everyone in the workspace reads them; owners and inbox agents change
//! and import them. Every change goes through [`crate::inbox::contacts`], as the JSON API's.

use std::collections::HashMap;

use axum::extract::{DefaultBodyLimit, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::{context, Value};
use serde::Deserialize;

use super::{acting, describe, error_page, page_viewer, render, safe_next, Viewer};
use crate::accounts::Roles;
use crate::domain::{ContactId, ProviderKind};
use crate::http::{ApiError, AppState};
use crate::inbox::contacts::{self, ContactError, RowProblem, MAX_IMPORT_BYTES};
use crate::store::{ContactFilter, ContactProfile};

/// Contacts per page.
const PAGE: u32 = 50;

/// The conversations a contact's panel lists.
const CONVERSATIONS: u32 = 20;

/// The routes of the Contacts page and the contact forms.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/contacts", get(list_page))
        .route("/contacts/export.csv", get(export))
        .route(
            "/contacts/import",
            // The file, and the form's few fields around it.
            post(import).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES + 64 * 1024)),
        )
        .route("/contacts/{contact}", get(contact_page).post(update))
}

/// The Contacts page's query: a search, a page, and what an import just did.
#[derive(Debug, Default, Deserialize)]
struct ListParams {
    #[serde(default)]
    q: String,
    page: Option<u32>,
    created: Option<u32>,
    updated: Option<u32>,
}

/// The values of a contact's panel: the contact, its other conversations, and its form.
pub(super) async fn panel(
    state: &AppState,
    viewer: &Viewer,
    contact: ContactProfile,
    back: &str,
) -> Result<Value, ApiError> {
    let conversations = state
        .store
        .customer_conversations(viewer.caller.workspace, contact.id, CONVERSATIONS)
        .await?;
    let attributes: Vec<String> = contact
        .attributes
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    Ok(context! {
        contact => Value::from_serialize(&contact),
        is_user_id => contact.user_id.as_deref() == Some(contact.wa_id.as_str()),
        attributes_text => attributes.join("\n"),
        labels_text => contact.labels.join(", "),
        customer_conversations => Value::from_serialize(&conversations),
        can_edit => Roles::INBOX.allows(viewer.caller.role),
        back,
    })
}

async fn list_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ListParams>,
) -> Response {
    let viewer = match page_viewer(&state, &headers, Roles::ANY, "/contacts").await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let notice = match (p.created, p.updated) {
        (Some(created), Some(updated)) => Some(format!(
            "Imported: {created} new {}, {updated} updated.",
            if created == 1 { "contact" } else { "contacts" }
        )),
        _ => None,
    };
    match list_values(&state, &viewer, &p, None).await {
        Ok(page) => render(
            StatusCode::OK,
            "contacts.html",
            Some(&viewer),
            context! { notice, ..page },
        ),
        Err(e) => error_page(Some(&viewer), e),
    }
}

/// The Contacts page's values; with an import's `problems` when a file was refused.
async fn list_values(
    state: &AppState,
    viewer: &Viewer,
    p: &ListParams,
    problems: Option<&[RowProblem]>,
) -> Result<Value, ApiError> {
    let ws = viewer.caller.workspace;
    let q = p.q.trim();
    if q.chars().count() > 200 {
        return Err(ApiError::invalid("q", "must be at most 200 characters"));
    }
    let page = p.page.unwrap_or(0).min(10_000);
    let mut found = state
        .store
        .list_contacts(
            ws,
            &ContactFilter {
                search: (!q.is_empty()).then(|| q.to_string()),
                limit: PAGE + 1,
                offset: page * PAGE,
                ..Default::default()
            },
        )
        .await?;
    let more = found.len() > PAGE as usize;
    found.truncate(PAGE as usize);
    let channels: Vec<crate::domain::Channel> = state
        .store
        .list_channels(Some(ws), None)
        .await?
        .into_iter()
        .filter(|c| c.provider != ProviderKind::Sandbox)
        .collect();
    let rows: Vec<Value> = found
        .iter()
        .map(|c| {
            context! {
                contact => Value::from_serialize(c),
                channel => channels.iter().find(|ch| ch.id == c.channel_id).map(|ch| ch.name.clone()),
            }
        })
        .collect();
    let link = |page: u32| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if !q.is_empty() {
            query.append_pair("q", q);
        }
        if page > 0 {
            query.append_pair("page", &page.to_string());
        }
        match query.finish() {
            query if query.is_empty() => "/contacts".to_string(),
            query => format!("/contacts?{query}"),
        }
    };
    let export = match q {
        "" => "/contacts/export.csv".to_string(),
        q => format!(
            "/contacts/export.csv?q={}",
            form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        ),
    };
    Ok(context! {
        page => "contacts",
        q,
        contacts => rows,
        several_channels => channels.len() > 1,
        channels => channels.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
        can_edit => Roles::INBOX.allows(viewer.caller.role),
        previous => (page > 0).then(|| link(page - 1)),
        next => more.then(|| link(page + 1)),
        first => page * PAGE + 1,
        export,
        problems => problems.map(Value::from_serialize),
        max_rows => contacts::MAX_IMPORT_ROWS,
    })
}

async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ListParams>,
) -> Response {
    let viewer = match page_viewer(&state, &headers, Roles::ANY, "/contacts").await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let q = p.q.trim();
    let search = (!q.is_empty()).then_some(q);
    match contacts::export(state.store.as_ref(), &viewer.caller, search).await {
        Ok(csv) => crate::http::api::contacts::csv_download(csv),
        Err(e) => error_page(Some(&viewer), e.into()),
    }
}

async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Response {
    let read = async {
        let mut multipart =
            <axum::extract::Multipart as axum::extract::FromRequest<AppState>>::from_request(
                request, &state,
            )
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let mut fields = HashMap::new();
        let mut file = None;
        while let Some(field) = multipart.next_field().await? {
            match field.name().unwrap_or("") {
                "file" => file = Some(field.bytes().await?),
                "_csrf" => {
                    fields.insert("_csrf".to_string(), field.text().await?);
                }
                _ => {}
            }
        }
        Ok::<_, ApiError>((fields, file))
    };
    let (fields, file) = match read.await {
        Ok(read) => read,
        Err(ApiError::TooLarge(_)) => {
            let e = ApiError::TooLarge(format!(
                "the file is larger than {} MiB: import it in parts",
                MAX_IMPORT_BYTES >> 20
            ));
            return error_page(None, e);
        }
        Err(e) => return error_page(None, e),
    };
    let viewer = match acting(&state, &headers, &fields).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    if !Roles::INBOX.allows(viewer.caller.role) {
        let e = ApiError::Forbidden(format!(
            "the {} role may not import contacts",
            viewer.caller.role
        ));
        return error_page(Some(&viewer), e);
    }
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        let e = ApiError::invalid("file", "choose a CSV file to import");
        return refused_page(&state, &viewer, e).await;
    };
    match contacts::import(state.store.as_ref(), &viewer.caller, &file).await {
        Ok(counts) => Redirect::to(&format!(
            "/contacts?created={}&updated={}",
            counts.created, counts.updated
        ))
        .into_response(),
        Err(ContactError::Rejected(problems)) => {
            match list_values(&state, &viewer, &ListParams::default(), Some(&problems)).await {
                Ok(page) => render(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "contacts.html",
                    Some(&viewer),
                    page,
                ),
                Err(e) => error_page(Some(&viewer), e),
            }
        }
        Err(e) => error_page(Some(&viewer), e.into()),
    }
}

/// The Contacts page again, saying why the form was refused.
async fn refused_page(state: &AppState, viewer: &Viewer, e: ApiError) -> Response {
    let status = e.status_code();
    match list_values(state, viewer, &ListParams::default(), None).await {
        Ok(page) => render(
            status,
            "contacts.html",
            Some(viewer),
            context! { error => describe(&e), ..page },
        ),
        Err(e) => error_page(Some(viewer), e),
    }
}

/// The contact `id` of the viewer's workspace (404 for any other, or for no id at all).
async fn find(state: &AppState, viewer: &Viewer, id: &str) -> Result<ContactProfile, ApiError> {
    let id: ContactId = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no contact {id}")))?;
    Ok(contacts::find(state.store.as_ref(), &viewer.caller, id).await?)
}

async fn contact_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/contacts/{id}");
    let viewer = match page_viewer(&state, &headers, Roles::ANY, &path).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let values = async {
        let contact = find(&state, &viewer, &id).await?;
        panel(&state, &viewer, contact, &path).await
    };
    match values.await {
        Ok(panel) => render(
            StatusCode::OK,
            "contact.html",
            Some(&viewer),
            context! { page => "contacts", ..panel },
        ),
        Err(e) => error_page(Some(&viewer), e),
    }
}

/// The contact form of the panel and of the contact's page: back where it was sent from.
async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let viewer = match acting(&state, &headers, &form).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    if !Roles::INBOX.allows(viewer.caller.role) {
        let e = ApiError::Forbidden(format!(
            "the {} role may not change contacts",
            viewer.caller.role
        ));
        return error_page(Some(&viewer), e);
    }
    let done = async {
        let contact = find(&state, &viewer, &id).await?;
        let patch = contacts::patch_from_form(&contact, &form).map_err(ContactError::Invalid)?;
        contacts::update(state.store.as_ref(), &viewer.caller, contact.id, &patch).await?;
        Ok::<_, ApiError>(())
    };
    match done.await {
        Ok(()) => {
            let back = safe_next(form.get("back").map(String::as_str));
            let back = match back.as_str() {
                "/inbox" => format!("/contacts/{id}"),
                _ => back,
            };
            Redirect::to(&format!("{back}#contact")).into_response()
        }
        Err(e) => error_page(Some(&viewer), e),
    }
}

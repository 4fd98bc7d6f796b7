//! `/contacts`: the business's customers, with what it keeps about them (language, notes,
//! labels and its own attributes, such as a CRM's case id), so a CRM links a case to its
//! WhatsApp conversation (`GET /conversations?attribute=crm_case:4711`), and the same contacts
//! as a CSV file, out and in. Everyone reads them; owners and inbox agents change them. The
//! rules are [`crate::inbox::contacts`]'s, as the console's.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::{Json, Path, Query};
use crate::accounts::{Caller, Roles};
use crate::domain::ContactId;
use crate::http::route::Route;
use crate::http::{ApiError, AppState};
use crate::inbox::contacts::{self, ContactError, MAX_IMPORT_BYTES};
use crate::store::{ContactFilter, ContactProfile, ImportCounts};

/// Routes under `/contacts`.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/contacts", Roles::ANY, list),
        Route::get("/contacts/export", Roles::ANY, export),
        Route::post("/contacts/import", Roles::INBOX, import).body_limit(MAX_IMPORT_BYTES),
        Route::get("/contacts/{contact}", Roles::ANY, read),
        Route::patch("/contacts/{contact}", Roles::INBOX, update),
    ]
}

/// `key:value` of an attribute filter, checked.
pub(crate) fn attribute_filter(raw: &str) -> Result<(String, String), ApiError> {
    match raw.split_once(':') {
        Some((key, value)) if contacts::valid_key(key) && !value.is_empty() => {
            Ok((key.to_string(), value.to_string()))
        }
        _ => Err(ApiError::invalid(
            "attribute",
            "must be `key:value`, the key 1-64 characters of a-z, 0-9, '-', '_' or '.'",
        )),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListParams {
    label: Option<String>,
    attribute: Option<String>,
    q: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/contacts",
    operation_id = "list_contacts",
    tag = "contacts",
    summary = "List contacts",
    params(ListParams),
    responses((status = 200, description = "Contacts", body = Vec<ContactProfile>))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<ListParams>,
) -> Result<Json<Vec<ContactProfile>>, ApiError> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 500"));
    }
    let filter = ContactFilter {
        label: p.label,
        attribute: p.attribute.as_deref().map(attribute_filter).transpose()?,
        search: p.q,
        limit,
        offset: p.offset.unwrap_or(0),
    };
    Ok(Json(
        state.store.list_contacts(caller.workspace, &filter).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/contacts/{contact}",
    operation_id = "get_contact",
    tag = "contacts",
    summary = "Read a contact",
    params(("contact" = ContactId, Path, description = "The contact")),
    responses((status = 200, description = "The contact", body = ContactProfile))
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ContactId>,
) -> Result<Json<ContactProfile>, ApiError> {
    Ok(Json(
        contacts::find(state.store.as_ref(), &caller, id).await?,
    ))
}

#[utoipa::path(
    patch,
    path = "/contacts/{contact}",
    operation_id = "update_contact",
    tag = "contacts",
    summary = "Change a contact",
    description = "`labels` replace the list; an attribute set to `null` is removed.",
    params(("contact" = ContactId, Path, description = "The contact")),
    request_body = crate::store::ContactPatch,
    responses((status = 200, description = "The contact", body = ContactProfile))
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ContactId>,
    Json(body): Json<Value>,
) -> Result<Json<ContactProfile>, ApiError> {
    contacts::find(state.store.as_ref(), &caller, id).await?;
    let patch = contacts::patch_from_json(body).map_err(ContactError::Invalid)?;
    Ok(Json(
        contacts::update(state.store.as_ref(), &caller, id, &patch).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ExportParams {
    /// Only contacts whose name or number contains this.
    q: Option<String>,
}

#[utoipa::path(
    get,
    path = "/contacts/export",
    operation_id = "export_contacts",
    tag = "contacts",
    summary = "Export contacts as CSV",
    description = "UTF-8 CSV, one contact a row: `name`, `number`, `channel`, `language`, \
        `labels` (separated by `; `), `notes`, then an `attribute:<key>` column per attribute. \
        A cell a spreadsheet would read as a formula (starting with `=`, `+`, `-`, `@`) starts \
        with `'`. `POST /contacts/import` reads the file back.",
    params(ExportParams),
    responses((status = 200, description = "The contacts", content_type = "text/csv", body = String))
)]
async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let search = p.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let csv = contacts::export(state.store.as_ref(), &caller, search).await?;
    Ok(csv_download(csv))
}

/// A CSV file answered as a download named for today.
pub fn csv_download(csv: Vec<u8>) -> Response {
    let name = format!(
        "attachment; filename=\"palaver-contacts-{}.csv\"",
        chrono::Utc::now().format("%Y-%m-%d")
    );
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        csv,
    )
        .into_response()
}

#[utoipa::path(
    post,
    path = "/contacts/import",
    operation_id = "import_contacts",
    tag = "contacts",
    summary = "Import contacts from CSV",
    description = "The body is a UTF-8 CSV file as `GET /contacts/export` writes it: a header \
        naming the columns (`number` is required; `channel` may be left out when the workspace \
        has one number), then one contact a row. A row whose number (or WhatsApp user id) the \
        channel knows changes that contact; an empty cell clears its field, an empty \
        `attribute:<key>` cell removes the attribute. Every row is checked first: with any \
        problem nothing is written, and the answer (422) names each problem by its line, \
        `line 4: number`. At most 5,000 rows and 4 MiB.",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, description = "What was written", body = ImportCounts))
)]
async fn import(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ImportCounts>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !matches!(mime.as_str(), "text/csv" | "application/csv" | "text/plain") {
        return Err(ApiError::UnsupportedMediaType(
            "send the file as text/csv".into(),
        ));
    }
    Ok(Json(
        contacts::import(state.store.as_ref(), &caller, &body).await?,
    ))
}

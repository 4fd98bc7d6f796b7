//! `/agents/{agent}/documents` and `/agents/{agent}/search`: upload (size-limited, type-checked),
//! list, read and delete an agent's documents, and search its knowledge.

use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{find_agent, Json, Path, Query};
use crate::accounts::{check_limit, Caller, Resource, Roles};
use crate::domain::{Document, DocumentId};
use crate::http::route::Route;
use crate::http::{ApiError, AppState};
use crate::knowledge::loaders::{self, Format};
use crate::knowledge::{IngestOutcome, Retrieved};

/// Routes under `/agents/{agent}/documents` and `/agents/{agent}/search`.
pub fn routes(state: &AppState) -> Vec<Route> {
    // Multipart framing adds a little to the file itself.
    let limit = state.settings.server.max_upload_bytes + 64 * 1024;
    vec![
        Route::get("/agents/{agent}/documents", Roles::AUTHORS, list),
        Route::post("/agents/{agent}/documents", Roles::AUTHORS, upload).body_limit(limit),
        Route::get("/agents/{agent}/documents/{document}", Roles::AUTHORS, read),
        Route::delete(
            "/agents/{agent}/documents/{document}",
            Roles::AUTHORS,
            remove,
        ),
        Route::get("/agents/{agent}/search", Roles::AUTHORS, search),
    ]
}

#[utoipa::path(
    get,
    path = "/agents/{agent}/documents",
    operation_id = "list_documents",
    tag = "knowledge",
    summary = "List an agent's documents",
    params(("agent" = String, Path, description = "The agent's name or id")),
    responses((status = 200, description = "Documents", body = Vec<Document>))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent): Path<String>,
) -> Result<Json<Vec<Document>>, ApiError> {
    let agent = find_agent(&state, &caller, &agent).await?;
    let documents = state.store.list_documents(&agent.collection()).await?;
    Ok(Json(documents.into_iter().map(shown).collect()))
}

#[utoipa::path(
    get,
    path = "/agents/{agent}/documents/{document}",
    operation_id = "get_document",
    tag = "knowledge",
    summary = "Read a document",
    params(("agent" = String, Path, description = "The agent's name or id"), ("document" = DocumentId, Path, description = "The document")),
    responses((status = 200, description = "The document", body = Document))
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path((agent, document)): Path<(String, DocumentId)>,
) -> Result<Json<Document>, ApiError> {
    let agent = find_agent(&state, &caller, &agent).await?;
    match state.store.document(document).await? {
        Some(doc) if doc.collection == agent.collection() => Ok(Json(shown(doc))),
        _ => Err(ApiError::NotFound(format!("no document {document}"))),
    }
}

#[utoipa::path(
    delete,
    path = "/agents/{agent}/documents/{document}",
    operation_id = "delete_document",
    tag = "knowledge",
    summary = "Delete a document",
    params(("agent" = String, Path, description = "The agent's name or id"), ("document" = DocumentId, Path, description = "The document")),
    responses((status = 204, description = "Deleted"))
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((agent, document)): Path<(String, DocumentId)>,
) -> Result<StatusCode, ApiError> {
    let agent = find_agent(&state, &caller, &agent).await?;
    match state.store.document(document).await? {
        Some(doc) if doc.collection == agent.collection() => {
            state.knowledge.delete_document(document).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(ApiError::NotFound(format!("no document {document}"))),
    }
}

/// A document as its workspace sees it: its collection by the workspace's name for it.
fn shown(mut doc: Document) -> Document {
    doc.collection = crate::domain::collection_name(&doc.collection).to_string();
    doc
}

/// What an upload did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadResult {
    source: String,
    #[serde(flatten)]
    outcome: IngestOutcome,
}

/// A file name safe to use as a document source: its last path component, printable.
fn clean_file_name(raw: &str) -> Option<String> {
    let name = raw.rsplit(['/', '\\']).next()?.trim();
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && !name.chars().any(char::is_control);
    ok.then(|| name.to_string())
}

/// The multipart form of an upload.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // the document's shape of the form; the handler reads its parts
struct Upload {
    /// The document (PDF, DOCX, HTML, Markdown, text, CSV...), with its file name.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

#[utoipa::path(
    post,
    path = "/agents/{agent}/documents",
    operation_id = "upload_document",
    tag = "knowledge",
    summary = "Upload a document",
    description = "Multipart with a `file` part; 413 over the limit, 415 for types that cannot be read.",
    params(("agent" = String, Path, description = "The agent's name or id")),
    request_body(content = Upload, content_type = "multipart/form-data"),
    responses((status = 201, description = "Added", body = UploadResult), (status = 200, description = "Already there, or replaced", body = UploadResult))
)]
async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent): Path<String>,
    mut multipart: Multipart,
) -> Result<(StatusCode, Json<UploadResult>), ApiError> {
    let agent = find_agent(&state, &caller, &agent).await?;
    let limit = state.settings.server.max_upload_bytes;
    while let Some(field) = multipart.next_field().await? {
        if field.name() != Some("file") {
            continue;
        }
        let raw_name = field
            .file_name()
            .ok_or_else(|| ApiError::invalid("file", "the `file` part needs a file name"))?
            .to_string();
        let source =
            clean_file_name(&raw_name).ok_or_else(|| ApiError::invalid("file", "bad file name"))?;
        let by_name = Format::from_path(std::path::Path::new(&source));
        let by_mime = field.content_type().and_then(Format::from_mime);
        let format = by_name.or(by_mime).ok_or_else(|| {
            ApiError::UnsupportedMediaType(format!(
                "{source}: unsupported type; accepted: Markdown, plain text, CSV, HTML, PDF"
            ))
        })?;
        let bytes = field.bytes().await?;
        if bytes.len() > limit {
            return Err(ApiError::TooLarge(format!(
                "{source}: over the upload limit of {limit} bytes"
            )));
        }
        loaders::sniff(&source, &bytes, format)
            .map_err(|e| ApiError::UnsupportedMediaType(e.to_string()))?;
        let collection = agent.collection();
        let stored = state.store.document_by_source(&collection, &source).await?;
        let resource = Resource::Document {
            bytes: (bytes.len() as u64)
                .saturating_sub(stored.as_ref().map_or(0, |d| d.bytes.max(0) as u64)),
            new_document: stored.is_none(),
        };
        check_limit(state.store.as_ref(), caller.workspace, resource).await?;
        let outcome = state
            .knowledge
            .ingest_bytes(&collection, &source, bytes.to_vec(), format)
            .await?;
        let status = match outcome {
            IngestOutcome::Added { .. } => StatusCode::CREATED,
            _ => StatusCode::OK,
        };
        return Ok((status, Json(UploadResult { source, outcome })));
    }
    Err(ApiError::invalid(
        "file",
        "a multipart part named `file` is required",
    ))
}

/// Search parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// The question.
    q: String,
    /// Results wanted (default: the agent's top-k).
    top_k: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/agents/{agent}/search",
    operation_id = "search",
    tag = "knowledge",
    summary = "Search an agent's knowledge",
    params(("agent" = String, Path, description = "The agent's name or id"), SearchParams),
    responses((status = 200, description = "Passages, best first", body = Vec<Retrieved>))
)]
async fn search(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent): Path<String>,
    Query(params): Query<SearchParams>,
) -> Result<Json<Vec<Retrieved>>, ApiError> {
    let agent = find_agent(&state, &caller, &agent).await?;
    if params.q.trim().is_empty() {
        return Err(ApiError::invalid("q", "must not be empty"));
    }
    if params.q.len() > 4000 {
        return Err(ApiError::invalid("q", "must be at most 4000 bytes"));
    }
    let top_k = params.top_k.unwrap_or(agent.config.top_k);
    if !(1..=50).contains(&top_k) {
        return Err(ApiError::invalid("top_k", "must be between 1 and 50"));
    }
    let results = state
        .knowledge
        .retrieve(&crate::knowledge::Query {
            collection: &agent.collection(),
            text: &params.q,
            top_k: top_k as usize,
            min_score: agent.config.min_score,
        })
        .await?;
    Ok(Json(results))
}

#[cfg(test)]
mod tests {
    use super::clean_file_name;

    #[test]
    fn file_names_are_reduced_to_their_last_component() {
        assert_eq!(clean_file_name("faq.md").as_deref(), Some("faq.md"));
        assert_eq!(
            clean_file_name("../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(
            clean_file_name("C:\\docs\\menu.pdf").as_deref(),
            Some("menu.pdf")
        );
        assert_eq!(clean_file_name(".env"), None);
        assert_eq!(clean_file_name("dir/"), None);
        assert_eq!(clean_file_name("a\nb.md"), None);
    }
}

//! `/sandbox/{agent}`: try an agent (and unsaved changes to it) through the same pipeline as
//! production; replies are returned with their sources, scores, timings, token counts and any
//! escalation, and are never sent. Text as JSON, voice notes as multipart uploads.

use axum::extract::{Multipart, Request, State};
use axum::http::{header, StatusCode};
use serde::Deserialize;

use super::{find_agent, optional_json, Json, Path};
use crate::accounts::{Caller, Roles};
use crate::domain::FieldError;
use crate::http::route::Route;
use crate::http::{ApiError, AppState};
use crate::pipeline::sandbox::{self, Said};
use crate::pipeline::{Outcome, Overrides, PipelineError};

/// Routes under `/sandbox`.
pub fn routes(state: &AppState) -> Vec<Route> {
    let limit = state.settings.server.max_upload_bytes + 64 * 1024;
    vec![
        Route::post("/sandbox/{agent}/messages", Roles::AUTHORS, message).body_limit(limit),
        Route::post("/sandbox/{agent}/reset", Roles::AUTHORS, reset),
    ]
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Store(s) => s.into(),
            PipelineError::Knowledge(k) => k.into(),
            PipelineError::Prompt(crate::prompts::PromptError::Template { name, message })
                if name == "overrides" =>
            {
                ApiError::Invalid(vec![FieldError::new("overrides", message)])
            }
            e @ PipelineError::Prompt(_) => ApiError::internal(e),
            PipelineError::Media(m) => ApiError::BadRequest(m),
            PipelineError::MissingConversation(m) => ApiError::NotFound(m),
        }
    }
}

/// A text message to the sandbox.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TextBody {
    text: String,
    /// Conversation session (default `api`).
    session: Option<String>,
    /// Unsaved agent changes to try.
    #[serde(default)]
    overrides: Overrides,
}

/// A voice note to the sandbox, as a multipart form.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // the document's shape of the form; the handler reads its parts
struct VoiceNote {
    /// The recording (OGG/Opus, as WhatsApp sends them, or WAV, MP3, M4A).
    #[schema(value_type = String, format = Binary)]
    audio: Vec<u8>,
    /// Text instead of, or with, the recording.
    text: Option<String>,
    /// Conversation session (default `api`).
    session: Option<String>,
}

fn check_session(session: Option<String>) -> Result<String, ApiError> {
    let session = session.unwrap_or_else(|| "api".into());
    if session.is_empty()
        || session.len() > 64
        || !session
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ApiError::invalid(
            "session",
            "must be 1-64 characters of letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(session)
}

#[utoipa::path(
    post,
    path = "/sandbox/{agent}/messages",
    operation_id = "sandbox_message",
    tag = "sandbox",
    summary = "Ask the sandbox",
    params(("agent" = String, Path, description = "The agent's name or id")),
    request_body(content((TextBody = "application/json"), (VoiceNote = "multipart/form-data"))),
    responses((status = 200, description = "The reply with sources, scores, timings, tokens and any escalation", body = Outcome))
)]
async fn message(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent): Path<String>,
    request: Request,
) -> Result<Json<Outcome>, ApiError> {
    let agent = find_agent(&state, &caller, &agent).await?;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (said, session, overrides) = if content_type.starts_with("multipart/form-data") {
        let mut multipart =
            <Multipart as axum::extract::FromRequest<AppState>>::from_request(request, &state)
                .await
                .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let (mut audio, mut session, mut overrides, mut text) =
            (None, None, Overrides::default(), None);
        while let Some(field) = multipart.next_field().await? {
            match field.name() {
                Some("audio") => {
                    let mime = field.content_type().map(str::to_string);
                    let bytes = field.bytes().await?;
                    audio = Some((bytes.to_vec(), mime));
                }
                Some("text") => text = Some(field.text().await?),
                Some("session") => session = Some(field.text().await?),
                Some("overrides") => {
                    let raw = field.text().await?;
                    overrides = serde_json::from_str(&raw).map_err(|e| {
                        ApiError::Invalid(vec![FieldError::new("overrides", e.to_string())])
                    })?;
                }
                _ => {}
            }
        }
        let said = match (audio, text) {
            (Some((bytes, _)), _) if bytes.is_empty() => {
                return Err(ApiError::invalid("audio", "is empty"))
            }
            (Some((bytes, mime)), None) => Said::Audio(bytes, mime),
            (None, Some(text)) => Said::Text(text),
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "audio",
                    "send either `audio` or `text`, not both",
                ))
            }
            (None, None) => {
                return Err(ApiError::invalid(
                    "audio",
                    "a part named `audio` (or `text`) is required",
                ))
            }
        };
        (said, session, overrides)
    } else if content_type.starts_with("application/json") {
        let Json(body) =
            <Json<TextBody> as axum::extract::FromRequest<AppState>>::from_request(request, &state)
                .await?;
        (Said::Text(body.text), body.session, body.overrides)
    } else {
        return Err(ApiError::UnsupportedMediaType(
            "send JSON (`{\"text\": ...}`) or multipart/form-data with an `audio` file".into(),
        ));
    };
    if let Said::Text(t) = &said {
        if t.trim().is_empty() || t.len() > 4096 {
            return Err(ApiError::invalid("text", "must be 1-4096 bytes"));
        }
    }
    let session = check_session(session)?;
    let outcome = sandbox::say(&state.pipeline, &agent, &session, said, &overrides).await?;
    Ok(Json(outcome))
}

/// Which session to reset.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    session: Option<String>,
}

#[utoipa::path(
    post,
    path = "/sandbox/{agent}/reset",
    operation_id = "sandbox_reset",
    tag = "sandbox",
    summary = "Forget a sandbox session",
    params(("agent" = String, Path, description = "The agent's name or id")),
    request_body(content = Option<ResetBody>, description = "Empty, or the session"),
    responses((status = 204, description = "Forgotten"))
)]
async fn reset(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let agent = find_agent(&state, &caller, &agent).await?;
    let body: ResetBody = optional_json(&body)?;
    let session = check_session(body.session)?;
    sandbox::reset(&state.pipeline, &agent, &session).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! The one place errors become HTTP responses. Every error has a status and a stable code; 5xx
//! bodies say only "internal error" with the request id, and the cause goes to the log.

use axum::extract::multipart::MultipartError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::accounts::{LimitError, WorkspaceError};
use crate::domain::FieldError;
use crate::knowledge::KnowledgeError;
use crate::store::StoreError;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or wrong API key.
    #[error("missing or invalid API key")]
    Unauthorized,
    /// Wrong email or password, or an invitation's password.
    #[error("{0}")]
    BadCredentials(String),
    /// Too many attempts: try again after this many seconds.
    #[error("too many attempts; try again in {0} s")]
    Throttled(u64),
    /// A quota of the workspace (its monthly model calls) is used up until then.
    #[error("{message}")]
    QuotaReached {
        /// What is used up and when it starts again.
        message: String,
        /// Seconds until it does.
        retry_after_secs: u64,
    },
    /// Missing or wrong webhook signature or token.
    #[error("{0}")]
    BadSignature(String),
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// Malformed request (bad JSON, bad query string, bad multipart).
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but invalid fields.
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    /// Conflicts with existing state (e.g. a name already taken).
    #[error("{0}")]
    Conflict(String),
    /// The workspace holds all its limits allow.
    #[error("{0}")]
    LimitReached(String),
    /// Body over the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// The body did not arrive within its deadline.
    #[error("{0}")]
    SlowBody(String),
    /// Content type not accepted here.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A dependency (database, model, index) is not available right now.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: logged, never shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorResponse<'a> {
    error: ErrorDetail<'a>,
}

/// What went wrong.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail<'a> {
    /// Stable: `unauthorized`, `bad_credentials`, `throttled`, `quota_reached`, `bad_signature`, `forbidden`,
    /// `not_found`, `bad_request`, `invalid`, `conflict`, `limit_reached`, `too_large`,
    /// `request_timeout`, `unsupported_media_type`, `unavailable`, `internal`.
    #[schema(value_type = String, example = "not_found")]
    code: &'static str,
    /// For people; may change.
    message: String,
    /// Each invalid field (`invalid` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<FieldError>>)]
    fields: Option<&'a [FieldError]>,
    /// The request's id, to find it in the log (5xx only).
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

impl ApiError {
    /// The HTTP status of each error.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::BadSignature(_) | ApiError::BadCredentials(_) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Throttled(_) | ApiError::QuotaReached { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) | ApiError::LimitReached(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::SlowBody(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::BadCredentials(_) => "bad_credentials",
            ApiError::Throttled(_) => "throttled",
            ApiError::QuotaReached { .. } => "quota_reached",
            ApiError::BadSignature(_) => "bad_signature",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Invalid(_) => "invalid",
            ApiError::Conflict(_) => "conflict",
            ApiError::LimitReached(_) => "limit_reached",
            ApiError::TooLarge(_) => "too_large",
            ApiError::SlowBody(_) => "request_timeout",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// An internal error from any cause.
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(e))
    }

    /// One invalid field.
    pub fn invalid(field: &str, message: &str) -> Self {
        ApiError::Invalid(vec![FieldError::new(field, message)])
    }
}

tokio::task_local! {
    /// The id of the request being served, for error bodies.
    pub static REQUEST_ID: String;
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let request_id = REQUEST_ID.try_with(|id| id.clone()).ok();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(request_id = request_id.as_deref().unwrap_or("-"), error = %cause, source = ?cause.source(), "internal error");
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(request_id = request_id.as_deref().unwrap_or("-"), error = %self, "unavailable");
        }
        let fields = match &self {
            ApiError::Invalid(fields) => Some(fields.as_slice()),
            _ => None,
        };
        let body = ErrorResponse {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                fields,
                request_id: status.is_server_error().then_some(request_id).flatten(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let ApiError::Throttled(secs)
        | ApiError::QuotaReached {
            retry_after_secs: secs,
            ..
        } = &self
        {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(*secs),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::NotFound(m) => ApiError::NotFound(m),
            StoreError::Unavailable(m) => {
                ApiError::Unavailable(format!("database unavailable: {m}"))
            }
            StoreError::Aborted(_) => {
                ApiError::Unavailable("the database was busy; try again".into())
            }
            e @ (StoreError::Corrupt(_) | StoreError::Backend(_)) => ApiError::internal(e),
        }
    }
}

impl From<crate::inbox::contacts::ContactError> for ApiError {
    fn from(e: crate::inbox::contacts::ContactError) -> Self {
        use crate::inbox::contacts::ContactError;
        match e {
            ContactError::Invalid(fields) => ApiError::Invalid(fields),
            // Each problem of a file as a field: its line and column.
            ContactError::Rejected(problems) => ApiError::Invalid(
                problems
                    .into_iter()
                    .map(|p| {
                        let at = match (p.line, p.column.as_str()) {
                            (0, "") => "file".to_string(),
                            (line, "") => format!("line {line}"),
                            (line, column) => format!("line {line}: {column}"),
                        };
                        FieldError::new(at, p.message)
                    })
                    .collect(),
            ),
            ContactError::NotFound(id) => ApiError::NotFound(format!("no contact {id}")),
            ContactError::Store(e) => e.into(),
        }
    }
}

impl From<crate::inbox::InboxError> for ApiError {
    fn from(e: crate::inbox::InboxError) -> Self {
        use crate::inbox::InboxError;
        match e {
            InboxError::Invalid(fields) => ApiError::Invalid(fields),
            InboxError::Channel(e) => e.into(),
            InboxError::Store(e) => e.into(),
        }
    }
}

impl From<crate::knowledge::faq::FaqError> for ApiError {
    fn from(e: crate::knowledge::faq::FaqError) -> Self {
        use crate::knowledge::faq::FaqError;
        match e {
            FaqError::Invalid(fields) => ApiError::Invalid(fields),
            FaqError::NotFound(m) => ApiError::NotFound(m),
            FaqError::Knowledge(e) => e.into(),
            FaqError::Store(e) => e.into(),
        }
    }
}

impl From<LimitError> for ApiError {
    fn from(e: LimitError) -> Self {
        match e {
            e @ LimitError::Reached { .. } => ApiError::LimitReached(e.to_string()),
            LimitError::Store(e) => e.into(),
        }
    }
}

impl From<crate::events::hooks::HookError> for ApiError {
    fn from(e: crate::events::hooks::HookError) -> Self {
        use crate::events::hooks::HookError;
        match e {
            HookError::Invalid { field, message } => {
                ApiError::Invalid(vec![FieldError::new(field, message)])
            }
            e @ HookError::Limit(_) => ApiError::LimitReached(e.to_string()),
            e @ HookError::Sealed => ApiError::internal(e),
            HookError::Store(e) => e.into(),
        }
    }
}

impl From<WorkspaceError> for ApiError {
    fn from(e: WorkspaceError) -> Self {
        match e {
            WorkspaceError::Invalid(fields) => ApiError::Invalid(fields),
            WorkspaceError::Store(e) => e.into(),
        }
    }
}

impl From<KnowledgeError> for ApiError {
    fn from(e: KnowledgeError) -> Self {
        use crate::knowledge::loaders::LoadError;
        match e {
            KnowledgeError::Load(LoadError::Unsupported(m)) => ApiError::UnsupportedMediaType(m),
            KnowledgeError::Load(e @ (LoadError::Unreadable(_) | LoadError::Empty(_))) => {
                ApiError::Invalid(vec![FieldError::new("file", e.to_string())])
            }
            e @ KnowledgeError::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
            KnowledgeError::InvalidCollection(c) => {
                ApiError::invalid("collection", &format!("`{c}` is not a valid name"))
            }
            KnowledgeError::Store(e) => e.into(),
            e @ (KnowledgeError::Embed(_) | KnowledgeError::Vectors(_)) => {
                ApiError::Unavailable(e.to_string())
            }
            e @ KnowledgeError::Io { .. } => ApiError::internal(e),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::UnsupportedMediaType("expected `Content-Type: application/json`".into())
            }
            JsonRejection::JsonDataError(e) => {
                ApiError::Invalid(vec![FieldError::new("body", e.body_text())])
            }
            // A body over the request limit is 413, as the multipart routes answer.
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge(other.body_text())
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

impl From<MultipartError> for ApiError {
    fn from(e: MultipartError) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(e.body_text())
        } else {
            ApiError::BadRequest(e.body_text())
        }
    }
}

//! Graph API errors mapped to what the caller does: retry, switch to a template, repair credentials, or give up.

use super::*;

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub(crate) error: ErrorBody,
}

/// Graph's `error`, or a bare string from proxies that simplify it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum ErrorBody {
    Graph(GraphError),
    Text(String),
}

#[derive(Debug, Deserialize)]
pub(crate) struct GraphError {
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) code: Option<i64>,
    #[serde(default)]
    pub(crate) error_data: Option<WaErrorData>,
}

/// Codes that mean "slow down": retry later.
pub(crate) const THROTTLED: &[i64] = &[4, 80007, 130429, 131048, 131056];
/// Codes Meta documents as temporary server-side failures.
pub(crate) const SERVER_TROUBLE: &[i64] = &[1, 2, 131000, 131016, 131057, 133004, 133005];
/// Codes for a token, permission or account problem: the channel needs a person's attention.
pub(crate) const AUTH_TROUBLE: &[i64] = &[0, 3, 10, 190, 368, 130497, 131005, 131031];
/// Outside the 24-hour customer-service window.
pub(crate) const REENGAGEMENT: i64 = 131047;

/// Maps a failed Graph call (also Kapso's proxy) to a [`ProviderError`] by the envelope's code,
/// falling back to the HTTP status.
pub(crate) fn graph_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let (code, message) = match serde_json::from_slice::<ErrorEnvelope>(body).map(|e| e.error) {
        Ok(ErrorBody::Graph(error)) => {
            let mut message = error.message.unwrap_or_else(|| "unknown error".into());
            if let Some(details) = error.error_data.and_then(|d| d.details) {
                message = format!("{message}: {details}");
            }
            (error.code, message)
        }
        Ok(ErrorBody::Text(message)) => (None, message),
        Err(_) => (
            None,
            String::from_utf8_lossy(body).chars().take(300).collect(),
        ),
    };
    let message = match code {
        Some(code) => format!("HTTP {}, code {code}: {message}", status.as_u16()),
        None => format!("HTTP {}: {message}", status.as_u16()),
    };
    match code {
        Some(REENGAGEMENT) => ProviderError::NeedsTemplate(message),
        Some(code) if THROTTLED.contains(&code) || SERVER_TROUBLE.contains(&code) => {
            ProviderError::Transient {
                message,
                retry_after: retry_after(headers),
            }
        }
        Some(code) if AUTH_TROUBLE.contains(&code) || (200..=299).contains(&code) => {
            ProviderError::Auth(message)
        }
        _ => status_error(status, headers, message),
    }
}

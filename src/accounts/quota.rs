//! The monthly limit of model calls a workspace's people may ask for (drafting an agent's
//! instructions with a model): its owners set it, each call is counted in the store before it
//! is made — so replicas share one count and the last call cannot be taken twice — and given
//! back when the model never answered. Months are calendar months in UTC.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::Serialize;

use super::{audit, Caller};
use crate::domain::{FieldError, Workspace, WorkspaceId};
use crate::store::{Store, StoreError};

/// The highest monthly limit an owner may set.
pub const MAX_MONTHLY_LIMIT: u64 = 1_000_000;

/// A workspace's model calls in the current month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ModelCalls {
    /// The month counted, `YYYY-MM` (UTC).
    pub month: String,
    /// Calls counted this month.
    pub used: u64,
    /// Calls allowed in a month; `None`: no limit.
    pub limit: Option<u64>,
    /// When the count starts again (the first of next month, UTC).
    pub resets_at: DateTime<Utc>,
}

/// Why a model call may not be made.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// The month's calls are used up.
    #[error("this workspace's model calls for {month} are used up ({used} of {limit}); the count starts again on {} (UTC)", resets_at.format("%Y-%m-%d"))]
    Reached {
        /// Calls counted this month.
        used: u64,
        /// The limit.
        limit: u64,
        /// The month.
        month: String,
        /// When the count starts again.
        resets_at: DateTime<Utc>,
    },
    /// A limit outside what may be set.
    #[error("invalid limit")]
    Invalid(Vec<FieldError>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A counted call, to give back if the model never answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    workspace: WorkspaceId,
    month: String,
    /// Calls counted this month, this one included.
    pub used: u64,
}

/// The month `at` falls in, as counted: `YYYY-MM`.
pub fn month_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m").to_string()
}

/// The first instant of the month after `at`'s.
pub fn next_month(at: DateTime<Utc>) -> DateTime<Utc> {
    let (year, month) = if at.month() == 12 {
        (at.year() + 1, 1)
    } else {
        (at.year(), at.month() + 1)
    };
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .unwrap_or(at)
}

async fn workspace(store: &dyn Store, ws: WorkspaceId) -> Result<Workspace, StoreError> {
    store
        .workspace(ws)
        .await?
        .ok_or_else(|| StoreError::NotFound("the workspace no longer exists".into()))
}

/// The workspace's calls in the month of `now`.
pub async fn model_calls(
    store: &dyn Store,
    ws: WorkspaceId,
    now: DateTime<Utc>,
) -> Result<ModelCalls, StoreError> {
    let limit = workspace(store, ws).await?.model_calls_limit;
    let month = month_of(now);
    let used = store.model_calls(ws, &month).await?;
    Ok(ModelCalls {
        month,
        used,
        limit,
        resets_at: next_month(now),
    })
}

/// Counts one call in the month of `now`, or refuses when the month's calls are used up.
pub async fn count_call(
    store: &dyn Store,
    ws: WorkspaceId,
    now: DateTime<Utc>,
) -> Result<Counted, QuotaError> {
    let limit = workspace(store, ws).await?.model_calls_limit;
    let month = month_of(now);
    match store.count_model_call(ws, &month, limit).await? {
        Some(used) => Ok(Counted {
            workspace: ws,
            month,
            used,
        }),
        None => Err(QuotaError::Reached {
            used: store.model_calls(ws, &month).await?,
            limit: limit.unwrap_or(0),
            month,
            resets_at: next_month(now),
        }),
    }
}

/// Gives back a counted call the model never answered; a failure is logged (the count is then
/// one too high, which errs on the side of the limit).
pub async fn give_back(store: &dyn Store, counted: Counted) {
    if let Err(e) = store
        .uncount_model_call(counted.workspace, &counted.month)
        .await
    {
        tracing::warn!(workspace = %counted.workspace, error = %e, "a model call not made stays counted");
    }
}

/// Checks a monthly limit an owner sets.
pub fn validate_limit(limit: Option<u64>) -> Result<(), QuotaError> {
    match limit {
        Some(n) if n > MAX_MONTHLY_LIMIT => Err(QuotaError::Invalid(vec![FieldError::new(
            "monthly_limit",
            format!("must be between 0 and {MAX_MONTHLY_LIMIT}, or null for no limit"),
        )])),
        _ => Ok(()),
    }
}

/// Sets the caller's workspace's monthly limit (`None`: no limit) and records who did.
pub async fn set_limit(
    store: &dyn Store,
    caller: &Caller,
    limit: Option<u64>,
) -> Result<ModelCalls, QuotaError> {
    validate_limit(limit)?;
    store
        .set_model_calls_limit(caller.workspace, limit)
        .await?
        .ok_or_else(|| StoreError::NotFound("the workspace no longer exists".into()))?;
    tracing::info!(workspace = %caller.workspace, ?limit, "monthly model call limit set");
    audit(
        store,
        caller,
        "workspace.model_calls_limit",
        Some(caller.workspace.to_string()),
        serde_json::json!({"monthly_limit": limit}),
    )
    .await;
    Ok(model_calls(store, caller.workspace, Utc::now()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_when_they_end() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let cases = [
            ("2026-01-31T23:59:59Z", "2026-01", "2026-02-01T00:00:00Z"),
            ("2026-02-01T00:00:00Z", "2026-02", "2026-03-01T00:00:00Z"),
            ("2026-12-15T12:00:00Z", "2026-12", "2027-01-01T00:00:00Z"),
        ];
        for (now, month, next) in cases {
            assert_eq!(month_of(at(now)), month, "{now}");
            assert_eq!(next_month(at(now)), at(next), "{now}");
        }
    }

    #[test]
    fn limits_are_bounded() {
        assert!(validate_limit(None).is_ok());
        assert!(validate_limit(Some(0)).is_ok());
        assert!(validate_limit(Some(MAX_MONTHLY_LIMIT)).is_ok());
        assert!(matches!(
            validate_limit(Some(MAX_MONTHLY_LIMIT + 1)),
            Err(QuotaError::Invalid(fields)) if fields[0].field == "monthly_limit"
        ));
    }
}

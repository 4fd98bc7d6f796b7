//! `/reports`: how the inbox did over a range of days (conversations per day, the share the
//! bot answered alone, people's response and resolution times, escalations by reason, the
//! satisfaction survey), filtered by channel and person. The console's Reports page draws the
//! same report and exports it as CSV.

use axum::extract::State;
use serde::Deserialize;

use super::{Json, Query};
use crate::accounts::{Caller, Roles};
use crate::http::route::Route;
use crate::http::{ApiError, AppState};
use crate::inbox::reports::{self, Report, ReportRequest};

/// Routes under `/reports`.
pub fn routes() -> Vec<Route> {
    vec![Route::get("/reports", Roles::ANY, read)]
}

/// What the report covers.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ReportParams {
    /// First day (`YYYY-MM-DD`, in `zone`); 29 days before `to` when not given.
    from: Option<String>,
    /// Last day, included; today when not given. At most 366 days from `from`.
    to: Option<String>,
    /// Only this channel (an id).
    channel: Option<String>,
    /// Only the conversations now assigned to this person (a user id), and the surveys about
    /// their work.
    person: Option<String>,
    /// The IANA time zone days are cut in (`Europe/Lisbon`); UTC when not given.
    zone: Option<String>,
}

impl From<ReportParams> for ReportRequest {
    fn from(p: ReportParams) -> Self {
        ReportRequest {
            from: p.from,
            to: p.to,
            channel: p.channel,
            person: p.person,
            zone: p.zone,
        }
    }
}

#[utoipa::path(
    get,
    path = "/reports",
    operation_id = "get_report",
    tag = "reports",
    summary = "Read the inbox's report",
    params(ReportParams),
    responses((status = 200, description = "The report", body = Report))
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<ReportParams>,
) -> Result<Json<Report>, ApiError> {
    let request = ReportRequest::from(p);
    let store = state.store.as_ref();
    let now = chrono::Utc::now();
    Ok(Json(
        reports::requested(store, caller.workspace, &request, now).await?,
    ))
}

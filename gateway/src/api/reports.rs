//! Field reports (灾情报送): a village or street operator sends a short text up the
//! cascade; the district, and every node on the way, lists what reached it.
//!
//! A report is answered once the relay has made its frame and stored it for the link
//! up (202 with its sequence number); from then on it goes over whatever bearer is up,
//! after a restart too.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::auth::{Action, Operators};
use super::{ApiError, Authenticates, Caller};
use crate::cascade::store::StoredReport;
use crate::node::cascade::{CascadeHandle, Request};

/// The longest report, in characters: a few BeiDou messages.
const MAX_REPORT_CHARS: usize = 200;

pub struct ReportApi {
    pub operators: Operators,
    pub cascade: CascadeHandle,
}

impl Authenticates for ReportApi {
    fn operators(&self) -> &Operators {
        &self.operators
    }
}

/// A report to send up.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportForm {
    /// What happened, where: 道路中断、房屋倒塌、人员被困 …
    pub text: String,
}

/// A report on its way.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportAccepted {
    /// This node's sequence number for the report's frame.
    pub sequence: u32,
}

/// The reports that reached this node, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportList {
    pub reports: Vec<StoredReport>,
}

pub fn routes(state: Arc<ReportApi>) -> axum::Router {
    axum::Router::new()
        .route("/v1/reports", get(list).post(send))
        .with_state(state)
}

/// Sends a field report up the cascade.
#[utoipa::path(post, path = "/v1/reports", request_body = ReportForm,
    responses((status = 202, body = ReportAccepted), (status = 400, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn send(
    State(state): State<Arc<ReportApi>>,
    caller: Caller,
    Json(form): Json<ReportForm>,
) -> Result<(StatusCode, Json<ReportAccepted>), ApiError> {
    caller.may(Action::Message)?;
    let text = form.text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() || text.chars().count() > MAX_REPORT_CHARS {
        return Err(ApiError::bad_request(format!(
            "a report is 1 to {MAX_REPORT_CHARS} characters"
        )));
    }
    tracing::info!(operator = %caller.0.name, %text, "field report to send up");
    let (reply, answer) = oneshot::channel();
    let unavailable = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the cascade is not running",
        )
    };
    state
        .cascade
        .requests
        .send(Request::Report { text, reply })
        .map_err(|_| unavailable())?;
    let sequence = answer
        .await
        .map_err(|_| unavailable())?
        .map_err(ApiError::refused)?;
    Ok((StatusCode::ACCEPTED, Json(ReportAccepted { sequence })))
}

/// The field reports that reached this node.
#[utoipa::path(get, path = "/v1/reports",
    responses((status = 200, body = ReportList)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<ReportApi>>,
    caller: Caller,
) -> Result<Json<ReportList>, ApiError> {
    caller.may(Action::Read)?;
    let cascade = state.cascade.clone();
    let reports = tokio::task::spawn_blocking(move || cascade.reports(200))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "stopped"))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?;
    Ok(Json(ReportList { reports }))
}

/// The report routes alone, with JSON answers for unknown paths and methods: the API
/// of a node in the cascade that has nothing else to serve.
pub fn router(state: Arc<ReportApi>) -> axum::Router {
    routes(state.clone()).merge(
        axum::Router::new()
            .route("/openapi.json", get(super::openapi::document::<ReportApi>))
            .fallback(super::not_found::<ReportApi>)
            .method_not_allowed_fallback(super::method_not_allowed::<ReportApi>)
            .with_state(state),
    )
}

//! Live broadcasts: the command centre's own voice, to chosen areas at a chosen level,
//! with the priority, guards, audit and receipts of an alert.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::alerts::{AlertView, Submission, store_submission, view};
use super::auth::Action;
use super::{ApiError, ApiState, Caller};
use crate::alert::cap::MsgType;
use crate::alert::intake::{AlertForm, BroadcastSource, Kind};
use crate::alert::model::AlertState;
use crate::alert::playout;
use crate::alert::store::{LIVE_STATES, Transition};

/// A live broadcast to start.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastForm {
    /// GB/T 2260 codes of 6, 9 or 12 digits.
    pub areas: Vec<String>,
    /// routine (default), blue, yellow, orange or red.
    #[serde(default)]
    pub level: Option<String>,
    /// A capture device (`default`); give this or `rtp_listen`.
    #[serde(default)]
    pub device: Option<String>,
    /// `IP:PORT` where the dispatcher console sends RTP.
    #[serde(default)]
    pub rtp_listen: Option<String>,
    /// none, chime (default from the node), pre-warning, air-raid or all-clear.
    #[serde(default)]
    pub attention: Option<String>,
    /// actual (default), exercise or test.
    #[serde(default)]
    pub purpose: Option<String>,
    /// The longest it may run, minutes (the node's default validity when absent).
    #[serde(default)]
    pub valid_minutes: Option<u32>,
    #[serde(default)]
    pub headline: Option<String>,
}

/// Start a live broadcast. Orange and red Actual broadcasts wait for a supervisor,
/// as alerts do.
#[utoipa::path(post, path = "/v1/broadcasts", request_body = BroadcastForm,
    responses((status = 201, body = AlertView), (status = 400, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 422, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn start(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.may(Action::Send)?;
    let bytes = raw.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let form: BroadcastForm =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("JSON: {e}")))?;
    let source = match (&form.device, &form.rtp_listen) {
        (Some(device), None) => BroadcastSource {
            device: Some(device.clone()),
            rtp_listen: None,
        },
        (None, Some(listen)) => BroadcastSource {
            device: None,
            rtp_listen: Some(listen.parse().map_err(|_| {
                ApiError::bad_request(format!("rtp_listen {listen:?} is not IP:PORT"))
            })?),
        },
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one source: `device` (a capture device) or `rtp_listen` (IP:PORT)",
            ));
        }
    };
    let now = state.clock.now();
    let alert_form = AlertForm {
        text: String::new(),
        level: form.level.clone().unwrap_or_else(|| "routine".into()),
        areas: form.areas.clone(),
        headline: form.headline.clone(),
        repeat: Some(1),
        attention: form.attention.clone(),
        purpose: form.purpose.clone(),
        language: None,
        valid_minutes: form.valid_minutes,
    };
    let identifier = format!(
        "{}-broadcast-{}-{:08x}",
        state.node_name,
        now.format("%Y%m%dT%H%M%S"),
        rand::random::<u32>()
    );
    let mut admitted = state
        .rules
        .admit_form(
            &alert_form,
            Kind::Broadcast,
            &caller.0.name,
            identifier,
            &state.alerts.attention.to_string(),
            now,
        )
        .map_err(|e| ApiError::refused(e.to_string()))?;
    admitted.broadcast = Some(source);
    let submission = Submission {
        admitted,
        cap: None,
        msg_type: MsgType::Alert,
    };
    let view = store_submission(&state, &caller, submission).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Stop a live broadcast.
#[utoipa::path(post, path = "/v1/broadcasts/{id}/stop", params(("id" = i64, Path)),
    responses((status = 200, body = AlertView), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn stop(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    caller.may(Action::Send)?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a broadcast id")))?;
    let record = state.store.get(id).await?;
    if record.alert.kind != Kind::Broadcast {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("{id} is an alert, not a broadcast: cancel it instead"),
        ));
    }
    let record = state
        .store
        .transition(
            id,
            Transition {
                from: LIVE_STATES,
                to: AlertState::Done,
                action: "stopped",
                reason: Some(format!("stopped by {}", caller.0.name)),
            },
            caller.0.name.clone(),
            state.clock.now(),
        )
        .await?;
    info!(broadcast = id, operator = %caller.0.name, "live broadcast stopped");
    state.tell_playout(playout::Command::Cancelled(id));
    Ok(Json(view(&state, record).await?))
}

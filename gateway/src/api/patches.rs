//! The patching routes: live patches and radio ports, for radio operators.
//!
//! Each request is handed to the node's patching task ([`crate::node::patching`]) and
//! answered with what the task did. A change is stored before the answer; if storing
//! fails the answer is a 500 saying the change is in force but will not survive a
//! restart.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::auth::{Action, Operators};
use super::{ApiError, Authenticates, Caller};
use crate::node::patching::{PatchRequest, PatchStatus, PortStatus};
use crate::patch::bus::PatchError;
use crate::patch::{MemberId, PatchMode, PatchSpec};

/// The largest patch request taken.
const MAX_BODY: usize = 16 * 1024;

/// What the patching routes need.
pub struct PatchApi {
    pub operators: Operators,
    pub requests: mpsc::UnboundedSender<PatchRequest>,
}

impl Authenticates for PatchApi {
    fn operators(&self) -> &Operators {
        &self.operators
    }
}

/// A patch to make or change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchForm {
    /// Letters, digits, `-` and `_`, up to 64.
    pub name: String,
    /// The number keyed by DTMF; the lowest free one when absent.
    pub number: Option<u16>,
    /// Radio ports (and other members) by name; at least two.
    pub members: Vec<String>,
    /// Makes it a simulselect: this member reaches all, the others reach only it.
    pub console: Option<String>,
}

/// Patches and radio ports.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PatchList {
    pub patches: Vec<PatchStatus>,
    pub ports: Vec<PortStatus>,
}

/// What a reload did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReloadAnswer {
    pub summary: String,
}

/// The patching routes, without a fallback, to merge into a node's API router.
pub fn routes(state: Arc<PatchApi>) -> axum::Router {
    axum::Router::new()
        .route("/v1/patches", get(list).post(upsert))
        .route("/v1/patches/{name}", delete(remove))
        .route("/v1/reload", post(reload))
        .with_state(state)
}

/// The patching routes alone, with JSON answers for unknown paths and methods: the
/// API of a node that patches radios and takes no alerts.
pub fn router(state: Arc<PatchApi>) -> axum::Router {
    routes(state.clone()).merge(
        axum::Router::new()
            .route("/openapi.json", get(super::openapi::document::<PatchApi>))
            .fallback(super::not_found::<PatchApi>)
            .method_not_allowed_fallback(super::method_not_allowed::<PatchApi>)
            .with_state(state),
    )
}

fn gone() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "patching is not running on this node",
    )
}

async fn ask<T>(
    state: &PatchApi,
    request: impl FnOnce(oneshot::Sender<T>) -> PatchRequest,
) -> Result<T, ApiError> {
    let (reply, answer) = oneshot::channel();
    state.requests.send(request(reply)).map_err(|_| gone())?;
    answer.await.map_err(|_| gone())
}

fn patch_error(e: PatchError) -> ApiError {
    match e {
        PatchError::UnknownPatch(_) | PatchError::UnknownNumber(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
        }
        PatchError::Permanent(_) => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
        PatchError::NotStored(_) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        }
        other => ApiError::refused(other.to_string()),
    }
}

/// Patches and radio ports, with who is talking and which ports are down.
#[utoipa::path(get, path = "/v1/patches", responses((status = 200, body = PatchList)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<PatchApi>>,
    caller: Caller,
) -> Result<Json<PatchList>, ApiError> {
    caller.may(Action::Read)?;
    let (patches, ports) = ask(&state, PatchRequest::List).await?;
    Ok(Json(PatchList { patches, ports }))
}

/// Makes a live patch, or changes the live patch of that name; audio flowing to
/// members that stay is not interrupted.
#[utoipa::path(post, path = "/v1/patches", request_body = PatchForm,
    responses((status = 200, body = PatchStatus), (status = 422, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn upsert(
    State(state): State<Arc<PatchApi>>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<PatchStatus>, ApiError> {
    caller.may(Action::Patch)?;
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a patch request is at most {MAX_BODY} bytes"),
        ));
    }
    let form: PatchForm = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("not a patch form: {e}")))?;
    let spec = PatchSpec {
        name: form.name,
        number: form.number.unwrap_or(0),
        members: form.members.into_iter().map(MemberId).collect(),
        mode: match form.console {
            Some(console) => PatchMode::Simulselect {
                console: MemberId(console),
            },
            None => PatchMode::Patch,
        },
        permanent: false,
    };
    let name = spec.name.clone();
    let status = ask(&state, |reply| PatchRequest::Upsert(spec, reply))
        .await?
        .map_err(patch_error)?;
    tracing::info!(operator = %caller.0.name, patch = %name, "patch set through the API");
    Ok(Json(status))
}

/// Removes a live patch; a permanent one is changed only in the configuration.
#[utoipa::path(delete, path = "/v1/patches/{name}",
    responses((status = 200, body = PatchStatus), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<Arc<PatchApi>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<PatchStatus>, ApiError> {
    caller.may(Action::Patch)?;
    let status = ask(&state, |reply| PatchRequest::Remove(name.clone(), reply))
        .await?
        .map_err(patch_error)?;
    tracing::info!(operator = %caller.0.name, patch = %name, "patch removed through the API");
    Ok(Json(status))
}

/// Re-reads the node's configuration, as SIGHUP does.
#[utoipa::path(post, path = "/v1/reload",
    responses((status = 200, body = ReloadAnswer), (status = 422, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn reload(
    State(state): State<Arc<PatchApi>>,
    caller: Caller,
) -> Result<Json<ReloadAnswer>, ApiError> {
    caller.may(Action::Reload)?;
    let summary = ask(&state, PatchRequest::Reload)
        .await?
        .map_err(ApiError::refused)?;
    tracing::info!(operator = %caller.0.name, "configuration reloaded through the API");
    Ok(Json(ReloadAnswer { summary }))
}

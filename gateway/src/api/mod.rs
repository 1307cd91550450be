//! The control API: HTTP/JSON for the command centre, the CLI and child gateways.
//!
//! Every request, `/openapi.json` included, carries `Authorization: Bearer TOKEN` of
//! an operator in the operators file ([`auth`]); without one the answer is 401, with
//! a role that may not act 403. Every error is JSON, `{"error": KIND, "message":
//! TEXT}`, with `faults` (element path, line, message) for a CAP document that breaks
//! the standard. A request that changes anything is answered only after the change is
//! durable in the alert database.
//!
//! | method | path | role | what |
//! |---|---|---|---|
//! | POST | `/v1/alerts` | operator | submit CAP XML or a JSON form; `?dry_run=true` previews |
//! | GET | `/v1/alerts` | viewer | active alerts; `?all=true` for the latest 100 |
//! | GET | `/v1/alerts/{id}` | viewer | one alert, its state and receipts |
//! | POST | `/v1/alerts/{id}/confirm` | supervisor | second operator's confirmation |
//! | POST | `/v1/alerts/{id}/update` | operator | replace with a new JSON form |
//! | POST | `/v1/alerts/{id}/cancel` | operator | stop it everywhere |
//! | POST | `/v1/alerts/{id}/receipts` | node | a child gateway reports its loudspeakers |
//! | POST | `/v1/broadcasts` | operator | start a live broadcast (device or RTP) |
//! | POST | `/v1/broadcasts/{id}/stop` | operator | stop it |
//! | GET | `/v1/patches` | viewer | patches and radio ports, with who is talking |
//! | POST | `/v1/patches` | operator | make or change a live patch |
//! | DELETE | `/v1/patches/{name}` | operator | remove a live patch |
//! | GET | `/v1/terminals` | viewer | satellite terminals: up or down, signal, queue |
//! | POST | `/v1/terminals/{name}/messages` | operator | queue a message on a terminal |
//! | GET | `/v1/terminals/{name}/messages` | viewer | a terminal's outbox and inbox |
//! | POST | `/v1/reload` | supervisor | re-read the configuration, as SIGHUP does |
//! | GET | `/v1/audit` | viewer | the audit log |
//! | GET | `/v1/status` | viewer | the node, its destinations, what is playing |
//! | GET | `/openapi.json` | viewer | this API, described |

pub mod alerts;
pub mod auth;
pub mod broadcasts;
pub mod openapi;
pub mod patches;
pub mod reports;
pub mod terminals;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::alert::cap::{Fault, MAX_DOCUMENT_BYTES};
use crate::alert::clock::Clock;
use crate::alert::intake::Rules;
use crate::alert::playout;
use crate::alert::speech::SpeechEngine;
use crate::alert::store::{Store, StoreError};
use crate::config::AlertsConfig;
use auth::{Action, Operator, Operators};

/// One destination of the node, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DestinationInfo {
    pub name: String,
    /// loudspeaker or gateway.
    pub kind: String,
    pub area: String,
    pub codec: String,
    #[schema(value_type = String)]
    pub address: SocketAddr,
    /// Whether it plays Exercise and Test alerts.
    pub exercises: bool,
}

/// What the node's tasks report for the status page.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct DestinationLive {
    /// The alert it is playing now.
    pub playing: Option<i64>,
    /// Its last RTCP receiver report.
    pub last_report_at: Option<DateTime<Utc>>,
    pub loss_percent: Option<f64>,
    pub jitter_ms: Option<f64>,
}

/// Live state shared between the node's tasks and the API.
#[derive(Debug, Default)]
pub struct Live {
    pub destinations: HashMap<String, DestinationLive>,
}

/// Everything a request handler needs.
pub struct ApiState {
    pub node_name: String,
    pub tier: String,
    pub area: String,
    pub destinations: Vec<DestinationInfo>,
    pub operators: Operators,
    pub store: Store,
    pub rules: Rules,
    pub alerts: AlertsConfig,
    pub engine: SpeechEngine,
    pub clock: Clock,
    pub started_at: DateTime<Utc>,
    /// Tells playout about durable changes.
    pub playout: mpsc::UnboundedSender<playout::Command>,
    pub live: Arc<Mutex<Live>>,
    /// The cascade, where alerts also go down as frames (`[cascade]`).
    pub cascade: Option<crate::node::cascade::CascadeHandle>,
}

impl ApiState {
    fn tell_playout(&self, command: playout::Command) {
        if self.playout.send(command).is_err() {
            tracing::warn!(
                ?command,
                "playout is not running: the change is stored and plays when it starts"
            );
        }
    }
}

/// An API error: a status and a JSON body naming the fault.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub faults: Vec<Fault>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable word for scripts: unauthorised, forbidden, bad_request, too_large,
    /// unsupported_media_type, invalid_cap, refused, not_found, conflict, speech, internal.
    pub error: String,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub faults: Vec<Fault>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            faults: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn refused(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.kind.to_string(),
            message: self.message,
            faults: self.faults,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            StoreError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            other => {
                tracing::error!(error = %other, "alert database failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    other.to_string(),
                )
            }
        }
    }
}

/// The authenticated operator of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Operator);

impl Caller {
    /// 403 unless the caller's role may do `action`.
    pub fn may(&self, action: Action) -> Result<(), ApiError> {
        if action.allowed(self.0.role) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{} ({}) may not {}",
                    self.0.name,
                    self.0.role,
                    action.describe()
                ),
            ))
        }
    }
}

/// A router's state that knows the operators, so its requests can be authenticated.
pub trait Authenticates {
    fn operators(&self) -> &Operators;
}

impl Authenticates for ApiState {
    fn operators(&self) -> &Operators {
        &self.operators
    }
}

impl<S: Authenticates + Send + Sync> FromRequestParts<Arc<S>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Caller, ApiError> {
        let unauthorised = |message: &str| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorised",
                message.to_string(),
            )
        };
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                unauthorised("no Authorization header: send `Authorization: Bearer TOKEN`")
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| unauthorised("the Authorization header must be `Bearer TOKEN`"))?;
        state
            .operators()
            .authenticate(token)
            .cloned()
            .map(Caller)
            .ok_or_else(|| unauthorised("unknown token"))
    }
}

/// The API's routes; `others` adds the routes of the node's other parts (patching,
/// satellite terminals).
pub fn router(state: Arc<ApiState>, others: Option<axum::Router>) -> axum::Router {
    let alerts = axum::Router::new()
        .route("/v1/alerts", post(alerts::submit).get(alerts::list))
        .route("/v1/alerts/{id}", get(alerts::get_one))
        .route("/v1/alerts/{id}/confirm", post(alerts::confirm))
        .route("/v1/alerts/{id}/update", post(alerts::update))
        .route("/v1/alerts/{id}/cancel", post(alerts::cancel))
        .route("/v1/alerts/{id}/receipts", post(alerts::report_receipts))
        .route("/v1/broadcasts", post(broadcasts::start))
        .route("/v1/broadcasts/{id}/stop", post(broadcasts::stop))
        .route("/v1/audit", get(alerts::audit))
        .route("/v1/status", get(alerts::status))
        .route("/openapi.json", get(openapi::document::<ApiState>))
        .fallback(not_found::<ApiState>)
        .method_not_allowed_fallback(method_not_allowed::<ApiState>)
        // The body limit is checked here too, so an oversized body is refused
        // before it is read into memory.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_DOCUMENT_BYTES))
        .with_state(state);
    match others {
        Some(others) => alerts.merge(others),
        None => alerts,
    }
}

async fn not_found<S: Authenticates + Send + Sync>(
    _caller: Caller,
    State(_): State<Arc<S>>,
) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint: see /openapi.json",
    )
}

async fn method_not_allowed<S: Authenticates + Send + Sync>(
    _caller: Caller,
    State(_): State<Arc<S>>,
) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method: see /openapi.json",
    )
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

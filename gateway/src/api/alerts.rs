//! The alert endpoints.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::auth::Action;
use super::{ApiError, ApiState, Caller, DestinationInfo, DestinationLive};
use crate::alert::cap::{self, CapError, MsgType};
use crate::alert::intake::{Admitted, AlertForm, Kind, Refusal, Skipped};
use crate::alert::model::AlertState;
use crate::alert::playout::{self, programme};
use crate::alert::store::{AlertRecord, AreaReceipt, AuditEntry, NewAlert, Receipt, Transition};
use crate::node::cascade::CascadePlan;

/// `?dry_run=true` on a submission.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct SubmitQuery {
    /// Preview what would play where, without storing or playing anything.
    #[serde(default)]
    pub dry_run: bool,
}

/// `?all=true` on the list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Include final alerts (the latest 100), not only active ones.
    #[serde(default)]
    pub all: bool,
}

/// `?after=SEQ` on the audit log.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Only lines after this sequence number.
    #[serde(default)]
    pub after: i64,
}

/// An optional reason, for a cancel.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    #[serde(default)]
    pub reason: Option<String>,
}

/// An alert with its receipts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertView {
    #[serde(flatten)]
    pub record: AlertRecord,
    pub receipts: Vec<Receipt>,
    /// The receipts of the nodes down the cascade that played it, by area.
    pub area_receipts: Vec<AreaReceipt>,
    pub summary: Summary,
}

/// The receipts in one line and in counts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Summary {
    /// "2 of 3 loudspeakers played; 1 sent, not confirmed".
    pub text: String,
    pub loudspeakers: usize,
    pub played: usize,
    pub unconfirmed: usize,
    pub failed: usize,
    /// Ended (cancelled, expired, failed) before it played there.
    pub missed: usize,
    pub pending: usize,
    pub skipped: usize,
    /// Gateways targeted that have reported no loudspeaker yet.
    pub silent_gateways: Vec<String>,
}

/// What a submission would do: the answer to a dry run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub dry_run: bool,
    /// "play" or "wait for a second operator's confirmation, then play".
    pub would: String,
    #[serde(flatten)]
    pub alert: Admitted,
    /// The destinations it would play on.
    pub destinations: Vec<DestinationInfo>,
    /// The speech voice, or `recorded`.
    pub voice: String,
    /// Exactly what the speech engine would be given.
    pub spoken: String,
    pub attention_seconds: f64,
    pub speech_seconds: f64,
    /// One play: attention, pause, speech.
    pub play_seconds: f64,
    /// Every play with the gaps between them.
    pub total_seconds: f64,
    /// Exactly the text the alert goes down the cascade with (`[cascade]` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cascade_text: Option<String>,
    /// How it would reach each neighbour below now: bearer, messages, time.
    pub cascade: Vec<CascadePlan>,
}

/// The node's status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    pub node: String,
    pub tier: String,
    pub area: String,
    pub now: chrono::DateTime<chrono::Utc>,
    /// Seconds the node's clock is set off the system clock (replays).
    pub clock_offset_seconds: i64,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub active_alerts: usize,
    pub destinations: Vec<DestinationStatus>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DestinationStatus {
    #[serde(flatten)]
    pub info: DestinationInfo,
    #[serde(flatten)]
    pub live: DestinationLive,
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not an alert id (a whole number)")))
}

fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body exceeds {} bytes", cap::MAX_DOCUMENT_BYTES),
        ),
        _ => ApiError::bad_request(e.body_text()),
    })
}

fn json_form<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("JSON: {e}")))
}

fn refusal(refusal: Refusal) -> ApiError {
    ApiError::refused(refusal.to_string())
}

/// The media type, lower case, without parameters.
fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// A submission, before it is stored or previewed.
pub(super) struct Submission {
    pub(super) admitted: Admitted,
    pub(super) cap: Option<String>,
    pub(super) msg_type: MsgType,
}

async fn admit(
    state: &ApiState,
    caller: &Caller,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Submission, ApiError> {
    let now = state.clock.now();
    let default_attention = state.alerts.attention.to_string();
    match media_type(headers).as_str() {
        "application/json" => {
            let form: AlertForm = json_form(bytes)?;
            let admitted = state
                .rules
                .admit_form(
                    &form,
                    Kind::Alert,
                    &caller.0.name,
                    form_identifier(&state.node_name, now),
                    &default_attention,
                    now,
                )
                .map_err(refusal)?;
            Ok(Submission {
                admitted,
                cap: None,
                msg_type: MsgType::Alert,
            })
        }
        "application/cap+xml" | "application/xml" | "text/xml" => {
            let alert = cap::parse(bytes).map_err(|e| match e {
                CapError::Invalid(faults) => ApiError {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    kind: "invalid_cap",
                    message: format!("{} fault(s) against the CAP standard", faults.len()),
                    faults,
                },
                CapError::TooLarge { .. } => {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
                }
                other => ApiError::bad_request(other.to_string()),
            })?;
            let mut known = HashMap::new();
            for r in &alert.references {
                if let Some(id) = state
                    .store
                    .find(r.sender.clone(), r.identifier.clone())
                    .await?
                {
                    known.insert((r.sender.clone(), r.identifier.clone()), id);
                }
            }
            let mut admitted = state
                .rules
                .admit_cap(&alert, &default_attention, now, |r| {
                    known
                        .get(&(r.sender.clone(), r.identifier.clone()))
                        .copied()
                })
                .map_err(refusal)?;
            if alert.msg_type == MsgType::Cancel {
                // Stopping an alert never waits for a second operator.
                admitted.needs_confirmation = false;
            }
            Ok(Submission {
                admitted,
                cap: Some(String::from_utf8_lossy(bytes).into_owned()),
                msg_type: alert.msg_type,
            })
        }
        "" => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "no Content-Type: send application/cap+xml for CAP or application/json for a form",
        )),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "{other} is not taken: send application/cap+xml for CAP or application/json for a form"
            ),
        )),
    }
}

/// Refuses now, not after the 201, what could never be made into sound: text the
/// speech engine cannot take in its language, or attached audio that does not decode.
fn playable(submission: Submission) -> Result<Submission, ApiError> {
    let alert = &submission.admitted;
    if submission.msg_type == MsgType::Cancel || alert.kind == Kind::Broadcast {
        return Ok(submission);
    }
    match &alert.audio {
        Some(bytes) => {
            codecs::audio_file::read_audio_bytes(bytes.clone(), std::path::Path::new("resource"))
                .map_err(|e| ApiError::refused(format!("the attached audio cannot be played: {e}")))?;
        }
        None => {
            crate::alert::speech::prepare(&alert.text, &alert.language)
                .map_err(|e| ApiError::refused(format!("the text cannot be spoken: {e}")))?;
        }
    }
    Ok(submission)
}

fn form_identifier(node: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{node}-{}-{:08x}",
        now.format("%Y%m%dT%H%M%S"),
        rand::random::<u32>()
    )
}

/// Submit an alert: CAP XML (`application/cap+xml`) or a JSON form (`application/json`).
#[utoipa::path(
    post,
    path = "/v1/alerts",
    params(SubmitQuery),
    request_body(content(
        (AlertForm = "application/json"),
        (String = "application/cap+xml")
    )),
    responses(
        (status = 201, description = "stored durably", body = AlertView),
        (status = 200, description = "dry run: what would play where", body = Preview),
        (status = 400, description = "malformed XML or JSON, not UTF-8, DOCTYPE", body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody),
        (status = 409, description = "already stored", body = super::ErrorBody),
        (status = 413, body = super::ErrorBody),
        (status = 415, body = super::ErrorBody),
        (status = 422, description = "invalid CAP, or refused by this node's rules", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn submit(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    query: Result<Query<SubmitQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.may(Action::Send)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let bytes = body(raw)?;
    let submission = match admit(&state, &caller, &headers, &bytes)
        .await
        .and_then(playable)
    {
        Ok(s) => s,
        Err(e) => {
            info!(operator = %caller.0.name, error = %e.message, "alert refused");
            state
                .store
                .audit(
                    caller.0.name.clone(),
                    "refused",
                    None,
                    e.message.clone(),
                    state.clock.now(),
                )
                .await?;
            return Err(e);
        }
    };

    if query.dry_run {
        let preview = preview(&state, submission.admitted).await?;
        state
            .store
            .audit(
                caller.0.name.clone(),
                "dry-run",
                None,
                format!(
                    "{} {:?} to {}",
                    preview.alert.level,
                    preview.alert.headline,
                    preview.alert.targets.join(", ")
                ),
                state.clock.now(),
            )
            .await?;
        return Ok((StatusCode::OK, Json(preview)).into_response());
    }

    let view = store_submission(&state, &caller, submission).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Stores an admitted alert or broadcast durably, then tells playout; the view of it.
pub(super) async fn store_submission(
    state: &ApiState,
    caller: &Caller,
    submission: Submission,
) -> Result<AlertView, ApiError> {
    let Submission {
        admitted,
        cap,
        msg_type,
    } = submission;
    let now = state.clock.now();
    let initial = if msg_type == MsgType::Cancel {
        AlertState::Done
    } else if admitted.needs_confirmation {
        AlertState::AwaitingConfirmation
    } else {
        AlertState::Accepted
    };
    let (level, purpose, headline) = (admitted.level, admitted.purpose, admitted.headline.clone());
    let kind = admitted.kind;
    let loudspeakers = state
        .destinations
        .iter()
        .filter(|d| d.kind == "loudspeaker" && admitted.targets.contains(&d.name))
        .map(|d| d.name.clone())
        .collect();
    // A cancel stops what it names at once; an update replaces the old alert when it
    // is accepted, which for one awaiting confirmation is at the confirmation.
    let stop_replaced = initial != AlertState::AwaitingConfirmation;
    let inserted = state
        .store
        .insert(
            NewAlert {
                alert: admitted,
                state: initial,
                operator: caller.0.name.clone(),
                cap,
                loudspeakers,
                stop_replaced,
            },
            now,
        )
        .await?;
    let id = inserted.id;
    info!(
        alert = id,
        ?kind,
        operator = %caller.0.name,
        %level,
        %purpose,
        msg_type = %msg_type,
        state = %initial,
        headline,
        stopped = ?inserted.stopped,
        "alert accepted"
    );
    for old in &inserted.stopped {
        state.tell_playout(playout::Command::Cancelled(*old));
    }
    if initial == AlertState::Accepted {
        state.tell_playout(playout::Command::Changed(id));
    }
    view(state, state.store.get(id).await?).await
}

async fn cancel_alert(
    state: &ApiState,
    id: i64,
    caller: &Caller,
    reason: String,
) -> Result<AlertRecord, ApiError> {
    let record = state
        .store
        .transition(
            id,
            Transition::cancel(reason),
            caller.0.name.clone(),
            state.clock.now(),
        )
        .await?;
    info!(alert = id, operator = %caller.0.name, "alert cancelled");
    state.tell_playout(playout::Command::Cancelled(id));
    Ok(record)
}

async fn preview(state: &ApiState, admitted: Admitted) -> Result<Preview, ApiError> {
    let programme = programme::render(
        &admitted,
        admitted.audio.clone(),
        &state.alerts,
        &state.engine,
    )
    .await
    .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "speech", e.to_string()))?;
    let play = programme.duration().as_secs_f64();
    let repeat = f64::from(admitted.repeat);
    let total = play * repeat + state.alerts.gap.as_secs_f64() * (repeat - 1.0).max(0.0);
    let destinations = state
        .destinations
        .iter()
        .filter(|d| admitted.targets.contains(&d.name))
        .cloned()
        .collect();
    // What goes down the cascade: the node's own alerts, as text, where it has one.
    let (cascade_text, cascade) = match (&state.cascade, admitted.kind, &admitted.broadcast) {
        (Some(cascade), Kind::Alert, None) if admitted.cascade.is_none() => {
            let text = crate::alert::shorten::cascade_text(&admitted);
            let plans = cascade
                .plan(
                    admitted.level,
                    admitted.areas.clone(),
                    text.clone(),
                    admitted.expires,
                )
                .await;
            (Some(text), plans)
        }
        _ => (None, Vec::new()),
    };
    Ok(Preview {
        dry_run: true,
        cascade_text,
        cascade,
        would: if admitted.needs_confirmation {
            "wait for a second operator's confirmation, then play".into()
        } else if admitted.effective > state.clock.now() {
            format!("play from {}", admitted.effective)
        } else {
            "play now".into()
        },
        destinations,
        voice: programme.voice,
        spoken: programme.spoken,
        attention_seconds: programme.attention_duration.as_secs_f64(),
        speech_seconds: programme.speech_duration.as_secs_f64(),
        play_seconds: play,
        total_seconds: total,
        alert: admitted,
    })
}

/// The receipts of a record, counted.
pub async fn view(state: &ApiState, record: AlertRecord) -> Result<AlertView, ApiError> {
    let receipts = state.store.receipts(record.id).await?;
    let count = |s: &str| receipts.iter().filter(|r| r.state == s).count();
    let (played, unconfirmed, failed, pending, skipped, missed) = (
        count("played"),
        count("unconfirmed"),
        count("failed"),
        count("pending"),
        count("skipped"),
        count("missed"),
    );
    let loudspeakers = receipts.len() - skipped;
    let area_receipts = state.store.area_receipts(record.id).await?;
    // A gateway has reported when its loudspeakers' receipts came from it (`[upstream]
    // api`) or a receipt frame came up the cascade from its area or below.
    let silent_gateways: Vec<String> = state
        .destinations
        .iter()
        .filter(|d| d.kind == "gateway" && record.alert.targets.contains(&d.name))
        .filter(|d| !receipts.iter().any(|r| r.via == d.name))
        .filter(|d| !area_receipts.iter().any(|a| a.area.starts_with(&d.area)))
        .map(|d| d.name.clone())
        .collect();
    let mut text = format!("{played} of {loudspeakers} loudspeakers played");
    for (n, what) in [
        (unconfirmed, "sent, not confirmed"),
        (failed, "failed"),
        (missed, "not played"),
        (pending, "pending"),
        (skipped, "skipped (do not take exercises or tests)"),
    ] {
        if n > 0 {
            text.push_str(&format!("; {n} {what}"));
        }
    }
    if !silent_gateways.is_empty() {
        text.push_str(&format!(
            "; no report yet from {}",
            silent_gateways.join(", ")
        ));
    }
    if !area_receipts.is_empty() {
        let sum =
            |f: fn(&AreaReceipt) -> u16| area_receipts.iter().map(|a| u32::from(f(a))).sum::<u32>();
        text.push_str(&format!(
            "; down the cascade {} of {} loudspeakers played, in {} places",
            sum(|a| a.played),
            sum(|a| a.loudspeakers),
            area_receipts.len()
        ));
    }
    Ok(AlertView {
        record,
        receipts,
        area_receipts,
        summary: Summary {
            text,
            loudspeakers,
            played,
            unconfirmed,
            failed,
            missed,
            pending,
            skipped,
            silent_gateways,
        },
    })
}

/// List alerts: the active ones, or with `?all=true` the latest 100.
#[utoipa::path(get, path = "/v1/alerts", params(ListQuery),
    responses((status = 200, body = Vec<AlertView>), (status = 401, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AlertView>>, ApiError> {
    caller.may(Action::Read)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let mut out = Vec::new();
    for record in state.store.list(!query.all, 100).await? {
        out.push(view(&state, record).await?);
    }
    Ok(Json(out))
}

/// One alert with its state and per-loudspeaker receipts.
#[utoipa::path(get, path = "/v1/alerts/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = AlertView), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    caller.may(Action::Read)?;
    let record = state.store.get(parse_id(&id)?).await?;
    Ok(Json(view(&state, record).await?))
}

/// A second operator confirms an Actual alert at a level that needs it.
#[utoipa::path(post, path = "/v1/alerts/{id}/confirm", params(("id" = i64, Path)),
    responses((status = 200, body = AlertView), (status = 403, body = super::ErrorBody),
        (status = 409, description = "not awaiting confirmation, or the caller submitted it", body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn confirm(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    caller.may(Action::Confirm)?;
    let id = parse_id(&id)?;
    let confirmed = state
        .store
        .confirm(id, caller.0.name.clone(), state.clock.now())
        .await?;
    info!(alert = id, operator = %caller.0.name, stopped = ?confirmed.stopped, "alert confirmed");
    for old in &confirmed.stopped {
        state.tell_playout(playout::Command::Cancelled(*old));
    }
    state.tell_playout(playout::Command::Changed(id));
    let record = state.store.get(id).await?;
    Ok(Json(view(&state, record).await?))
}

/// Replace an alert with a new JSON form (a CAP Update does the same with CAP).
#[utoipa::path(post, path = "/v1/alerts/{id}/update", params(("id" = i64, Path)), request_body = AlertForm,
    responses((status = 201, body = AlertView), (status = 404, body = super::ErrorBody),
        (status = 422, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.may(Action::Send)?;
    let id = parse_id(&id)?;
    let old = state.store.get(id).await?;
    if old.state.is_final() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("alert {id} is {}; there is nothing to update", old.state),
        ));
    }
    let form: AlertForm = json_form(&body(raw)?)?;
    let now = state.clock.now();
    let mut admitted = state
        .rules
        .admit_form(
            &form,
            old.alert.kind,
            &caller.0.name,
            form_identifier(&state.node_name, now),
            &state.alerts.attention.to_string(),
            now,
        )
        .map_err(refusal)?;
    admitted.replaces = vec![id];
    admitted.msg_type = "Update".into();
    let view = store_submission(
        &state,
        &caller,
        Submission {
            admitted,
            cap: None,
            msg_type: MsgType::Update,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Cancel an alert: it stops on every loudspeaker.
#[utoipa::path(post, path = "/v1/alerts/{id}/cancel", params(("id" = i64, Path)), request_body(content = CancelBody, content_type = "application/json"),
    responses((status = 200, body = AlertView), (status = 404, body = super::ErrorBody),
        (status = 409, description = "already final", body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<AlertView>, ApiError> {
    caller.may(Action::Send)?;
    let id = parse_id(&id)?;
    let bytes = body(raw)?;
    let reason = if bytes.is_empty() {
        None
    } else {
        json_form::<CancelBody>(&bytes)?.reason
    };
    let reason = reason.unwrap_or_else(|| format!("cancelled by {}", caller.0.name));
    let record = cancel_alert(&state, id, &caller, reason).await?;
    Ok(Json(view(&state, record).await?))
}

/// A child gateway reports what its loudspeakers did with an alert.
#[utoipa::path(post, path = "/v1/alerts/{id}/receipts", params(("id" = i64, Path)), request_body = Vec<Receipt>,
    responses((status = 200, body = AlertView), (status = 403, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn report_receipts(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<AlertView>, ApiError> {
    caller.may(Action::ReportReceipts)?;
    let id = parse_id(&id)?;
    let mut receipts: Vec<Receipt> = json_form(&body(raw)?)?;
    let record = state.store.get(id).await?;
    // A gateway speaks for its own loudspeakers, for alerts sent to it, and never for
    // this node's own destinations, whose receipts come from their RTCP reports here.
    let gateway = &caller.0.name;
    let sent_to_caller = state.destinations.iter().any(|d| {
        &d.name == gateway && d.kind == "gateway" && record.alert.targets.contains(&d.name)
    });
    if !sent_to_caller {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("alert {id} was not sent to a gateway named {gateway}"),
        ));
    }
    if let Some(own) = receipts
        .iter()
        .find(|r| state.destinations.iter().any(|d| d.name == r.loudspeaker))
    {
        return Err(ApiError::bad_request(format!(
            "{} is a destination of this node: its receipt comes from its own RTCP reports",
            own.loudspeaker
        )));
    }
    for r in &mut receipts {
        if !matches!(
            r.state.as_str(),
            "played" | "unconfirmed" | "failed" | "pending" | "skipped"
        ) {
            return Err(ApiError::bad_request(format!(
                "receipt state {:?}: expected played, unconfirmed, failed, pending or skipped",
                r.state
            )));
        }
        // A gateway speaks for its own loudspeakers only.
        r.via = caller.0.name.clone();
    }
    let n = receipts.len();
    state
        .store
        .put_receipts(id, receipts, state.clock.now())
        .await?;
    info!(alert = id, gateway = %caller.0.name, receipts = n, "receipts reported");
    let record = state.store.get(id).await?;
    Ok(Json(view(&state, record).await?))
}

/// The audit log, oldest first.
#[utoipa::path(get, path = "/v1/audit", params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntry>)), security(("bearer" = [])))]
pub async fn audit(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    caller.may(Action::Read)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Json(state.store.audit_log(query.after, 1000).await?))
}

/// The node: its clock, its destinations and what each is playing.
#[utoipa::path(get, path = "/v1/status",
    responses((status = 200, body = Status)), security(("bearer" = [])))]
pub async fn status(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
) -> Result<Json<Status>, ApiError> {
    caller.may(Action::Read)?;
    let active = state.store.list(true, 1000).await?.len();
    let live = state
        .live
        .lock()
        .map(|l| l.destinations.clone())
        .unwrap_or_default();
    Ok(Json(Status {
        node: state.node_name.clone(),
        tier: state.tier.clone(),
        area: state.area.clone(),
        now: state.clock.now(),
        clock_offset_seconds: state.clock.offset().num_seconds(),
        started_at: state.started_at,
        active_alerts: active,
        destinations: state
            .destinations
            .iter()
            .map(|d| DestinationStatus {
                info: d.clone(),
                live: live.get(&d.name).cloned().unwrap_or_default(),
            })
            .collect(),
    }))
}

/// Keeps `Skipped` in the OpenAPI components.
#[allow(dead_code)]
fn _schema_uses(_: Skipped) {}

//! The satellite terminal routes: their state, messages to send, and what they carry.
//!
//! A message is stored in the outbox before the answer says "accepted" (202); from
//! then on it is not lost: it goes when the terminal can take it, after a restart too.
//! A recipient the terminal cannot address, or bytes longer than a known message, are
//! answered 400 or 422 before anything is stored; a message the terminal itself refuses
//! for good is answered 422 and kept as failed.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::Utc;
use drivers::satellite::TerminalKind;
use drivers::satellite::bearer::{Body, Outgoing, Urgency};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::auth::{Action, Operators};
use super::{ApiError, Authenticates, Caller};
use crate::config::kind_name;
use crate::node::terminal::{Submit, Submitted, TerminalHandle};
use crate::satellite::outbox::{Outbox, OutboxError, ReceivedMessage, SentMessage};

/// The largest request taken: far more than any terminal's message.
const MAX_BODY: usize = 16 * 1024;
/// The longest recipient: a phone number, an IMEI, a BeiDou card ID.
const MAX_RECIPIENT_CHARS: usize = 32;

/// What the terminal routes need.
pub struct TerminalApi {
    pub operators: Operators,
    pub outbox: Outbox,
    pub terminals: Vec<TerminalHandle>,
}

impl Authenticates for TerminalApi {
    fn operators(&self) -> &Operators {
        &self.operators
    }
}

/// A terminal, as its task last saw it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TerminalStatus {
    pub name: String,
    /// beidou, iridium or sms.
    pub kind: String,
    /// The BeiDou dialect configured (auto, 2.1, 4.0, bds3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialect: Option<String>,
    pub port: String,
    pub baud: u32,
    /// The port is open and the terminal answered and can send.
    pub up: bool,
    /// The port is open (the terminal may not have answered yet).
    pub port_open: bool,
    /// The BeiDou card ID, the modem's IMEI or model, once it said.
    pub identity: Option<String>,
    /// 0 (none) to 4 (strong).
    pub signal: Option<u8>,
    /// Bytes one message holds, once the terminal said.
    pub capacity: Option<usize>,
    /// Messages accepted and not yet sent or failed.
    pub queued: usize,
    /// Why the port or the terminal last went down.
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TerminalList {
    pub terminals: Vec<TerminalStatus>,
}

/// A message to send: text or bytes in hexadecimal, not both.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageForm {
    /// The terminal it is for: a BeiDou card ID, an Iridium IMEI, a phone number.
    pub to: String,
    pub text: Option<String>,
    /// Bytes, two hexadecimal digits each.
    pub hex: Option<String>,
    /// Ahead of every normal message (alerts).
    #[serde(default)]
    pub urgent: bool,
}

/// A message accepted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub id: u64,
    pub terminal: String,
    /// Always `queued`: stored, waiting for the terminal.
    pub state: String,
    /// The bearer's estimate of the time from the front of the queue to leaving, when
    /// the terminal's port is open.
    pub estimated_s: Option<f64>,
    /// Messages of this terminal waiting, this one included.
    pub queued: usize,
}

/// A terminal's messages, oldest first (the latest 200 each way).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Messages {
    pub terminal: String,
    pub outbox: Vec<SentMessage>,
    pub inbox: Vec<ReceivedMessage>,
}

/// The terminal routes, without a fallback, to merge into a node's API router.
pub fn routes(state: Arc<TerminalApi>) -> axum::Router {
    axum::Router::new()
        .route("/v1/terminals", get(list))
        .route("/v1/terminals/{name}/messages", post(send).get(messages))
        .with_state(state)
}

/// The terminal routes alone, with JSON answers for unknown paths and methods: the API
/// of a node that has terminals and neither alerts nor patching.
pub fn router(state: Arc<TerminalApi>) -> axum::Router {
    routes(state.clone()).merge(
        axum::Router::new()
            .route(
                "/openapi.json",
                get(super::openapi::document::<TerminalApi>),
            )
            .fallback(super::not_found::<TerminalApi>)
            .method_not_allowed_fallback(super::method_not_allowed::<TerminalApi>)
            .with_state(state),
    )
}

fn store_error(e: OutboxError) -> ApiError {
    tracing::error!(error = %e, "terminal database failure");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}

fn find<'a>(state: &'a TerminalApi, name: &str) -> Result<&'a TerminalHandle, ApiError> {
    state
        .terminals
        .iter()
        .find(|t| t.config.name == name)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no terminal {name:?} on this node"),
            )
        })
}

fn status(handle: &TerminalHandle) -> TerminalStatus {
    let snapshot = handle.snapshot.borrow().clone();
    let condition = snapshot.condition;
    let dialect = match handle.config.kind {
        drivers::satellite::TerminalKind::Beidou(d) => serde_json::to_value(d)
            .ok()
            .and_then(|v| v.as_str().map(String::from)),
        _ => None,
    };
    TerminalStatus {
        name: handle.config.name.clone(),
        kind: kind_name(handle.config.kind).into(),
        dialect,
        port: handle.config.port.display().to_string(),
        baud: handle.config.baud,
        up: condition.open && condition.up,
        port_open: condition.open,
        identity: condition.identity,
        signal: condition.signal,
        capacity: condition.capacity,
        queued: snapshot.queued,
        last_error: condition.last_error,
    }
}

/// Reads hexadecimal bytes; spaces between them are allowed.
fn parse_hex(hex: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err("hex needs two digits a byte: the count of digits is odd".into());
    }
    digits
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| format!("hex byte {} is not two hexadecimal digits", i + 1))
        })
        .collect()
}

/// How long a send waits for the terminal's task to take the message.
const SUBMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Checks `to` against what a terminal of `kind` can address: a BeiDou card is digits
/// (7 or 8 on most cards), a phone number digits with an optional `+`; an Iridium
/// modem sends to its gateway, so `to` only labels the message. Nothing else reaches a
/// terminal's command line, where `,` or `*` would change its fields.
fn check_recipient(kind: TerminalKind, to: &str) -> Result<(), String> {
    let digits = |d: &str, range: std::ops::RangeInclusive<usize>| {
        range.contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit())
    };
    match kind {
        TerminalKind::Beidou(_) if !digits(to, 1..=8) => {
            Err(format!("{to:?} is not a BeiDou card ID: 1 to 8 digits"))
        }
        TerminalKind::Sms if !digits(to.strip_prefix('+').unwrap_or(to), 3..=20) => Err(format!(
            "{to:?} is not a phone number: 3 to 20 digits, `+` first if international"
        )),
        TerminalKind::Iridium if to.contains([',', '*', '$']) => {
            Err(format!("{to:?}: an Iridium label has no `,`, `*` or `$`"))
        }
        _ => Ok(()),
    }
}

/// Checks a form and gives what it asks to send.
fn read_form(form: MessageForm) -> Result<(String, Urgency, Body), ApiError> {
    let to = form.to.trim().to_string();
    if to.is_empty()
        || to.chars().count() > MAX_RECIPIENT_CHARS
        || !to.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(ApiError::bad_request(format!(
            "`to` is the recipient terminal: 1 to {MAX_RECIPIENT_CHARS} visible ASCII characters"
        )));
    }
    let body = match (form.text, form.hex) {
        (Some(text), None) if !text.is_empty() => Body::Text(text),
        (None, Some(hex)) => {
            let bytes = parse_hex(&hex).map_err(ApiError::bad_request)?;
            if bytes.is_empty() {
                return Err(ApiError::bad_request("`hex` holds no bytes"));
            }
            Body::Bytes(bytes)
        }
        (Some(_), None) => return Err(ApiError::bad_request("`text` is empty")),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give `text` or `hex`, not both"));
        }
        (None, None) => return Err(ApiError::bad_request("give `text` or `hex`")),
    };
    let urgency = if form.urgent {
        Urgency::Urgent
    } else {
        Urgency::Normal
    };
    Ok((to, urgency, body))
}

/// The node's terminals: up or down, identity, signal, capacity and queue.
#[utoipa::path(get, path = "/v1/terminals", responses((status = 200, body = TerminalList)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<TerminalApi>>,
    caller: Caller,
) -> Result<Json<TerminalList>, ApiError> {
    caller.may(Action::Read)?;
    Ok(Json(TerminalList {
        terminals: state.terminals.iter().map(status).collect(),
    }))
}

/// Queues a message on a terminal; answered once it is stored.
#[utoipa::path(post, path = "/v1/terminals/{name}/messages", request_body = MessageForm,
    responses((status = 202, body = Accepted), (status = 400, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 422, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn send(
    State(state): State<Arc<TerminalApi>>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    caller.may(Action::Message)?;
    let terminal = find(&state, &name)?;
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a message request is at most {MAX_BODY} bytes"),
        ));
    }
    let form: MessageForm = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("not a message form: {e}")))?;
    let (to, urgency, message_body) = read_form(form)?;
    check_recipient(terminal.config.kind, &to).map_err(ApiError::bad_request)?;
    // Bytes go as they are, so a known capacity decides at once; text is measured by
    // the bearer in the terminal's own encoding.
    let capacity = terminal.snapshot.borrow().condition.capacity;
    // SMS splits bytes into concatenated parts: only one message's worth is a limit
    // on the others.
    let splits_bytes = terminal.config.kind == TerminalKind::Sms;
    if let (Body::Bytes(bytes), Some(capacity), false) = (&message_body, capacity, splits_bytes) {
        if bytes.len() > capacity {
            return Err(ApiError::refused(format!(
                "{} bytes do not fit: a message on {name} holds {capacity}",
                bytes.len()
            )));
        }
    }

    let operator = caller.0.name.clone();
    let stored_body = message_body.clone();
    let (terminal_name, recipient) = (name.clone(), to.clone());
    let id = state
        .outbox
        .call(move |o| {
            o.accept(
                &terminal_name,
                &recipient,
                urgency,
                &stored_body,
                &operator,
                Utc::now(),
            )
        })
        .await
        .map_err(store_error)?;
    tracing::info!(operator = %caller.0.name, terminal = %name, message_id = id, %to, urgent = urgency == Urgency::Urgent, "message accepted for a terminal");

    let (reply, answer) = oneshot::channel();
    let message = Outgoing {
        id,
        to,
        urgency,
        body: message_body,
    };
    // The task runs as long as the node: should it be gone, the message is stored and
    // goes at the next start.
    // A task held up (a port that does not drain) does not hold the request: the
    // message is stored either way.
    let submitted = match terminal.submit.send(Submit { message, reply }) {
        Ok(()) => tokio::time::timeout(SUBMIT_WAIT, answer)
            .await
            .ok()
            .and_then(Result::ok),
        Err(_) => None,
    };
    let estimated = match submitted {
        Some(Submitted::Refused(reason)) => {
            return Err(ApiError::refused(format!(
                "message {id} cannot go on {name}: {reason}"
            )));
        }
        Some(Submitted::Queued { time_for }) => time_for,
        None => None,
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            id,
            terminal: name,
            state: "queued".into(),
            estimated_s: estimated.as_ref().map(Duration::as_secs_f64),
            queued: terminal.snapshot.borrow().queued,
        }),
    ))
}

/// A terminal's messages: what was sent (with each one's state) and what came in.
#[utoipa::path(get, path = "/v1/terminals/{name}/messages",
    responses((status = 200, body = Messages), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn messages(
    State(state): State<Arc<TerminalApi>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Messages>, ApiError> {
    caller.may(Action::Read)?;
    find(&state, &name)?;
    let terminal = name.clone();
    let (outbox, inbox) = state
        .outbox
        .call(move |o| o.listing(&terminal))
        .await
        .map_err(store_error)?;
    Ok(Json(Messages {
        terminal: name,
        outbox,
        inbox,
    }))
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_recipient_is_checked_against_the_kind_of_terminal() {
        use drivers::satellite::BeidouDialect;
        let beidou = TerminalKind::Beidou(BeidouDialect::Auto);
        assert!(check_recipient(beidou, "0247718").is_ok());
        assert!(
            check_recipient(beidou, "0247718,0,1,41").is_err(),
            "a field injected"
        );
        assert!(check_recipient(beidou, "123456789").is_err());
        assert!(check_recipient(TerminalKind::Sms, "+8613800138000").is_ok());
        assert!(check_recipient(TerminalKind::Sms, "10086x").is_err());
        assert!(check_recipient(TerminalKind::Iridium, "gateway").is_ok());
        assert!(check_recipient(TerminalKind::Iridium, "a*b").is_err());
    }

    use super::*;

    fn form(text: Option<&str>, hex: Option<&str>) -> MessageForm {
        MessageForm {
            to: "0247718".into(),
            text: text.map(String::from),
            hex: hex.map(String::from),
            urgent: false,
        }
    }

    #[test]
    fn a_form_gives_text_or_bytes_and_never_both() {
        assert_eq!(
            read_form(form(Some("桥梁冲毁"), None)).expect("text").2,
            Body::Text("桥梁冲毁".into())
        );
        assert_eq!(
            read_form(form(None, Some("01 a4 2A ff"))).expect("hex").2,
            Body::Bytes(vec![0x01, 0xA4, 0x2A, 0xFF])
        );
        for (text, hex, says) in [
            (Some("a"), Some("01"), "not both"),
            (None, None, "give `text` or `hex`"),
            (None, Some("0g"), "hex byte 1"),
            (None, Some("012"), "odd"),
            (Some(""), None, "empty"),
        ] {
            let e = read_form(form(text, hex)).expect_err("refused");
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.message.contains(says), "{}", e.message);
        }
    }

    #[test]
    fn a_recipient_must_be_short_visible_ascii() {
        let mut bad = form(Some("a"), None);
        bad.to = "0247 718".into();
        assert!(read_form(bad).is_err());
    }
}

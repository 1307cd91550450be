//! The terminals' messages in SQLite: what operators asked to send, and what came in.
//!
//! Contract: [`Outbox::accept`] returns only once the message is on disk (WAL with
//! `synchronous=FULL`), so a message the API called accepted survives a crash or a
//! SIGKILL. A message is `queued` until its bearer says it left (`sent`) or will never
//! go (`failed`, with the reason); it changes state once, never back. Queued messages
//! come back from [`Outbox::queued`] in the order they were accepted, to be handed to
//! the bearer again after a restart. Text is kept as text, bytes as a blob.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use drivers::satellite::bearer::{Body, Outgoing, Urgency};
use rusqlite::{Connection, params};
use serde::Serialize;

/// The database file in the state directory.
pub const FILE_NAME: &str = "terminals.sqlite";

/// The most messages of each direction a listing gives.
pub const LISTING_LIMIT: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("cannot open the terminal database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("terminal database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("terminal database: message {id} is unreadable: {reason}")]
    Corrupt { id: i64, reason: String },
    #[error("terminal database: its worker stopped")]
    Stopped,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    terminal TEXT NOT NULL,
    recipient TEXT NOT NULL,
    urgent INTEGER NOT NULL,
    text TEXT,
    bytes BLOB,
    state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'failed')),
    reason TEXT,
    operator TEXT NOT NULL,
    accepted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK ((text IS NULL) <> (bytes IS NULL))
);
CREATE INDEX IF NOT EXISTS outbox_by_terminal ON outbox (terminal, state, id);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY,
    terminal TEXT NOT NULL,
    sender TEXT NOT NULL,
    text TEXT,
    bytes BLOB,
    received_at TEXT NOT NULL,
    CHECK ((text IS NULL) <> (bytes IS NULL))
);
CREATE INDEX IF NOT EXISTS inbox_by_terminal ON inbox (terminal, id);
";

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageState {
    /// Accepted, not yet confirmed by the terminal.
    Queued,
    /// The terminal said it left.
    Sent,
    /// It will not go; the reason says why.
    Failed,
}

impl MessageState {
    fn as_str(self) -> &'static str {
        match self {
            MessageState::Queued => "queued",
            MessageState::Sent => "sent",
            MessageState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<MessageState> {
        match text {
            "queued" => Some(MessageState::Queued),
            "sent" => Some(MessageState::Sent),
            "failed" => Some(MessageState::Failed),
            _ => None,
        }
    }
}

/// A message an operator asked a terminal to send, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SentMessage {
    pub id: u64,
    pub to: String,
    pub urgent: bool,
    #[serde(flatten)]
    pub content: Content,
    pub state: MessageState,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub operator: String,
    pub accepted_at: String,
    pub updated_at: String,
}

/// A message a terminal received, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReceivedMessage {
    pub id: u64,
    /// The sending terminal, as the network names it.
    pub from: String,
    #[serde(flatten)]
    pub content: Content,
    pub received_at: String,
}

/// What a stored message carries, as the API shows it: one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Content {
    /// The text, when it is text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The bytes in hexadecimal, when it is bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
}

impl Content {
    fn of(text: Option<String>, bytes: Option<Vec<u8>>) -> Content {
        Content {
            text,
            hex: bytes.as_deref().map(to_hex),
        }
    }
}

/// The database; cheap to clone, shared by the API and the terminal tasks.
#[derive(Clone)]
pub struct Outbox {
    connection: Arc<Mutex<Connection>>,
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Lower-case hexadecimal, two digits a byte.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn columns(body: &Body) -> (Option<&str>, Option<&[u8]>) {
    match body {
        Body::Text(text) => (Some(text.as_str()), None),
        Body::Bytes(bytes) => (None, Some(bytes.as_slice())),
    }
}

fn body_of(id: i64, text: Option<String>, bytes: Option<Vec<u8>>) -> Result<Body, OutboxError> {
    match (text, bytes) {
        (Some(text), None) => Ok(Body::Text(text)),
        (None, Some(bytes)) => Ok(Body::Bytes(bytes)),
        _ => Err(OutboxError::Corrupt {
            id,
            reason: "neither text nor bytes, or both".into(),
        }),
    }
}

fn unsigned(id: i64) -> Result<u64, OutboxError> {
    u64::try_from(id).map_err(|_| OutboxError::Corrupt {
        id,
        reason: "a negative id".into(),
    })
}

/// The columns an outbox query starts with: id, recipient, urgent, text, bytes.
type FirstColumns = (i64, String, bool, Option<String>, Option<Vec<u8>>);

fn first_columns(r: &rusqlite::Row) -> rusqlite::Result<FirstColumns> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

impl Outbox {
    /// Opens (creating) `state_dir/terminals.sqlite`.
    pub fn open(state_dir: &Path) -> Result<Outbox, OutboxError> {
        let path = state_dir.join(FILE_NAME);
        let open_error = |source| OutboxError::Open {
            path: path.clone(),
            source,
        };
        let connection = crate::durable::open(&path, SCHEMA).map_err(open_error)?;
        Ok(Outbox {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    fn with<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, OutboxError>,
    ) -> Result<T, OutboxError> {
        // A panic while holding the lock leaves SQLite consistent (each call is one
        // statement or its own transaction), so the connection is still usable.
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        work(&connection)
    }

    /// Runs `work` on a blocking thread, off the async tasks.
    pub async fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Outbox) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        let outbox = self.clone();
        tokio::task::spawn_blocking(move || work(&outbox))
            .await
            .map_err(|_| OutboxError::Stopped)?
    }

    /// Stores a message for `terminal` as queued; gives its id once it is durable.
    pub fn accept(
        &self,
        terminal: &str,
        to: &str,
        urgency: Urgency,
        body: &Body,
        operator: &str,
        at: DateTime<Utc>,
    ) -> Result<u64, OutboxError> {
        let (text, bytes) = columns(body);
        let at = timestamp(at);
        self.with(|c| {
            c.execute(
                "INSERT INTO outbox (terminal, recipient, urgent, text, bytes, state, operator, \
                 accepted_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7, ?7)",
                params![
                    terminal,
                    to,
                    urgency == Urgency::Urgent,
                    text,
                    bytes,
                    operator,
                    at
                ],
            )?;
            unsigned(c.last_insert_rowid())
        })
    }

    /// Moves a queued message to `sent` or `failed`; one already settled is left as
    /// it is. Gives whether it changed.
    pub fn settle(
        &self,
        id: u64,
        state: MessageState,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, OutboxError> {
        let at = timestamp(at);
        self.with(|c| {
            let changed = c.execute(
                "UPDATE outbox SET state = ?2, reason = ?3, updated_at = ?4 \
                 WHERE id = ?1 AND state = 'queued'",
                params![id as i64, state.as_str(), reason, at],
            )?;
            Ok(changed == 1)
        })
    }

    /// The queued messages of `terminal`, in the order they were accepted.
    pub fn queued(&self, terminal: &str) -> Result<Vec<Outgoing>, OutboxError> {
        self.with(|c| {
            let mut statement = c.prepare(
                "SELECT id, recipient, urgent, text, bytes FROM outbox \
                 WHERE terminal = ?1 AND state = 'queued' ORDER BY id",
            )?;
            let rows = statement.query_map(params![terminal], first_columns)?;
            let mut queued = Vec::new();
            for row in rows {
                let (id, to, urgent, text, bytes) = row?;
                queued.push(Outgoing {
                    id: unsigned(id)?,
                    to,
                    urgency: if urgent {
                        Urgency::Urgent
                    } else {
                        Urgency::Normal
                    },
                    body: body_of(id, text, bytes)?,
                });
            }
            Ok(queued)
        })
    }

    /// Stores a message `terminal` received.
    pub fn receive(
        &self,
        terminal: &str,
        from: &str,
        body: &Body,
        at: DateTime<Utc>,
    ) -> Result<u64, OutboxError> {
        let (text, bytes) = columns(body);
        self.with(|c| {
            c.execute(
                "INSERT INTO inbox (terminal, sender, text, bytes, received_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![terminal, from, text, bytes, timestamp(at)],
            )?;
            unsigned(c.last_insert_rowid())
        })
    }

    /// The latest messages of `terminal` each way, oldest first.
    pub fn listing(
        &self,
        terminal: &str,
    ) -> Result<(Vec<SentMessage>, Vec<ReceivedMessage>), OutboxError> {
        self.with(|c| {
            let mut statement = c.prepare(
                "SELECT * FROM (SELECT id, recipient, urgent, text, bytes, state, reason, \
                 operator, accepted_at, updated_at FROM outbox WHERE terminal = ?1 \
                 ORDER BY id DESC LIMIT ?2) ORDER BY id",
            )?;
            let rows = statement.query_map(params![terminal, LISTING_LIMIT as i64], |r| {
                Ok((
                    first_columns(r)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, String>(9)?,
                ))
            })?;
            let mut sent = Vec::new();
            for row in rows {
                let ((id, to, urgent, text, bytes), state, reason, operator, accepted, updated) =
                    row?;
                let state = MessageState::parse(&state).ok_or_else(|| OutboxError::Corrupt {
                    id,
                    reason: format!("unknown state {state:?}"),
                })?;
                sent.push(SentMessage {
                    id: unsigned(id)?,
                    to,
                    urgent,
                    content: Content::of(text, bytes),
                    state,
                    reason,
                    operator,
                    accepted_at: accepted,
                    updated_at: updated,
                });
            }

            let mut statement = c.prepare(
                "SELECT * FROM (SELECT id, sender, text, bytes, received_at FROM inbox \
                 WHERE terminal = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
            )?;
            let rows = statement.query_map(params![terminal, LISTING_LIMIT as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<Vec<u8>>>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?;
            let mut received = Vec::new();
            for row in rows {
                let (id, from, text, bytes, at) = row?;
                received.push(ReceivedMessage {
                    id: unsigned(id)?,
                    from,
                    content: Content::of(text, bytes),
                    received_at: at,
                });
            }
            Ok((sent, received))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: u32) -> DateTime<Utc> {
        use chrono::TimeZone as _;
        Utc.with_ymd_and_hms(2025, 7, 21, 8, 0, second)
            .single()
            .expect("a valid time")
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("emcomm-outbox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    }

    #[test]
    fn queued_messages_survive_reopening_in_the_order_they_were_accepted() {
        let dir = scratch("reopen");
        let outbox = Outbox::open(&dir).expect("opens");
        let text = Body::Text("暴雨红色预警".into());
        let bytes = Body::Bytes(vec![0x01, 0xA4, 0xFF]);
        let first = outbox
            .accept(
                "bd-1",
                "0247718",
                Urgency::Normal,
                &text,
                "zhang.wei",
                at(0),
            )
            .expect("stored");
        let sent = outbox
            .accept(
                "bd-1",
                "0247718",
                Urgency::Normal,
                &text,
                "zhang.wei",
                at(1),
            )
            .expect("stored");
        let third = outbox
            .accept(
                "bd-1",
                "0247718",
                Urgency::Urgent,
                &bytes,
                "zhang.wei",
                at(2),
            )
            .expect("stored");
        outbox
            .accept("sbd-1", "gateway", Urgency::Normal, &bytes, "li.na", at(3))
            .expect("stored");
        assert!(
            outbox
                .settle(sent, MessageState::Sent, None, at(4))
                .expect("settled")
        );
        drop(outbox);

        let outbox = Outbox::open(&dir).expect("opens again");
        let queued = outbox.queued("bd-1").expect("read");
        assert_eq!(
            queued,
            vec![
                Outgoing {
                    id: first,
                    to: "0247718".into(),
                    urgency: Urgency::Normal,
                    body: text,
                },
                Outgoing {
                    id: third,
                    to: "0247718".into(),
                    urgency: Urgency::Urgent,
                    body: bytes,
                },
            ]
        );
    }

    #[test]
    fn a_settled_message_keeps_its_first_outcome() {
        let dir = scratch("settle");
        let outbox = Outbox::open(&dir).expect("opens");
        let id = outbox
            .accept(
                "bd-1",
                "0247718",
                Urgency::Normal,
                &Body::Text("报告".into()),
                "zhang.wei",
                at(0),
            )
            .expect("stored");
        assert!(
            outbox
                .settle(id, MessageState::Failed, Some("too long"), at(1))
                .expect("settled")
        );
        assert!(
            !outbox
                .settle(id, MessageState::Sent, None, at(2))
                .expect("no change")
        );
        let (sent, received) = outbox.listing("bd-1").expect("listing");
        assert_eq!(sent[0].state, MessageState::Failed);
        assert_eq!(sent[0].reason.as_deref(), Some("too long"));
        assert!(received.is_empty());
        assert!(outbox.queued("bd-1").expect("read").is_empty());
    }

    #[test]
    fn received_messages_are_listed_with_text_as_text_and_bytes_in_hex() {
        let dir = scratch("inbox");
        let outbox = Outbox::open(&dir).expect("opens");
        outbox
            .receive("bd-1", "0166166", &Body::Text("桥梁冲毁".into()), at(0))
            .expect("stored");
        outbox
            .receive("bd-1", "0166166", &Body::Bytes(vec![0xde, 0xad]), at(1))
            .expect("stored");
        let (_, received) = outbox.listing("bd-1").expect("listing");
        assert_eq!(received[0].content.text.as_deref(), Some("桥梁冲毁"));
        assert_eq!(received[1].content.hex.as_deref(), Some("dead"));
        assert_eq!(received[1].received_at, "2025-07-21T08:00:01.000Z");
    }
}

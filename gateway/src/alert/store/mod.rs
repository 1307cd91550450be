//! The alert database: alerts, their states, receipts and the audit log, in SQLite.
//!
//! Contract: a call returns only after its change is durable. The database runs in
//! WAL mode with `synchronous=FULL`, so a commit has reached the disk when SQLite
//! returns from it; one thread owns the connection and commits every change that
//! queued while the previous commit was flushing in one transaction (group commit),
//! so the rate of durable changes grows with the load instead of being one fsync per
//! request. Each call runs inside its own savepoint: one that fails leaves the others
//! of its group untouched.
//!
//! The audit log is append-only: triggers refuse any update or delete of its rows.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::intake::Admitted;
use super::model::AlertState;

/// The most calls committed in one transaction.
const MAX_GROUP: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the alert database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("alert database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("alert database: stored record is unreadable: {0}")]
    Corrupt(String),
    #[error("the alert database has stopped")]
    Stopped,
    #[error("no alert {0}")]
    NotFound(i64),
    #[error("{0}")]
    Conflict(String),
}

/// Whether a job's work succeeded (so its savepoint is kept), and how to answer it
/// once the group's commit is known.
type Reply = Box<dyn FnOnce(bool) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// A handle on the database thread; cheap to clone.
#[derive(Clone)]
pub struct Store {
    jobs: std_mpsc::Sender<Job>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    identifier TEXT NOT NULL,
    sender TEXT NOT NULL,
    sent TEXT NOT NULL,
    state TEXT NOT NULL,
    state_reason TEXT,
    level TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    confirmed_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    plays_started INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL,
    cap TEXT,
    audio BLOB,
    UNIQUE (sender, identifier)
);
CREATE INDEX IF NOT EXISTS alerts_by_state ON alerts (state);
CREATE TABLE IF NOT EXISTS receipts (
    alert_id INTEGER NOT NULL REFERENCES alerts (id),
    loudspeaker TEXT NOT NULL,
    via TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (alert_id, loudspeaker)
);
CREATE TABLE IF NOT EXISTS area_receipts (
    alert_id INTEGER NOT NULL REFERENCES alerts (id),
    area TEXT NOT NULL,
    played INTEGER NOT NULL,
    loudspeakers INTEGER NOT NULL,
    bearer TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (alert_id, area)
);
CREATE TABLE IF NOT EXISTS cascade_cancels (
    origin TEXT NOT NULL,
    number INTEGER NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (origin, number)
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    operator TEXT NOT NULL,
    action TEXT NOT NULL,
    alert_id INTEGER,
    detail TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

/// A new alert to store.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub alert: Admitted,
    pub state: AlertState,
    pub operator: String,
    /// The CAP document as received, if it came as CAP.
    pub cap: Option<String>,
    /// The loudspeakers it targets directly: each gets a pending receipt.
    pub loudspeakers: Vec<String>,
    /// Stop the live alerts `alert.replaces` names, in the same transaction.
    pub stop_replaced: bool,
}

/// What [`Store::insert`] and [`Store::confirm`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    pub id: i64,
    /// Alerts stopped because this one replaces them.
    pub stopped: Vec<i64>,
}

/// A change of an alert's state made by an operator.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The states the change may start from.
    pub from: &'static [AlertState],
    pub to: AlertState,
    /// The audit log's word for it: confirmed, cancelled, superseded.
    pub action: &'static str,
    pub reason: Option<String>,
}

/// The states an alert can still be stopped in.
pub const LIVE_STATES: &[AlertState] = &[
    AlertState::Accepted,
    AlertState::AwaitingConfirmation,
    AlertState::Queued,
    AlertState::Playing,
];

impl Transition {
    /// A second operator confirms an alert that waits for it.
    pub fn confirm() -> Transition {
        Transition {
            from: &[AlertState::AwaitingConfirmation],
            to: AlertState::Accepted,
            action: "confirmed",
            reason: None,
        }
    }

    /// An operator (or a CAP Cancel) stops an alert that is not yet final.
    pub fn cancel(reason: String) -> Transition {
        Transition {
            from: LIVE_STATES,
            to: AlertState::Cancelled,
            action: "cancelled",
            reason: Some(reason),
        }
    }

    /// A CAP Update replaces an alert.
    pub fn supersede(by: i64) -> Transition {
        Transition {
            from: LIVE_STATES,
            to: AlertState::Cancelled,
            action: "superseded",
            reason: Some(format!("superseded by alert {by}")),
        }
    }
}

/// One stored alert.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertRecord {
    pub id: i64,
    pub state: AlertState,
    /// Why it reached its state, where that needs saying (who cancelled, what failed).
    pub state_reason: Option<String>,
    pub submitted_by: String,
    pub confirmed_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// How many times playout has begun; never more than `repeat`.
    pub plays_started: u32,
    #[serde(flatten)]
    pub alert: Admitted,
}

/// One loudspeaker's account of one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Receipt {
    pub loudspeaker: String,
    /// The node the loudspeaker hangs off.
    pub via: String,
    /// pending, played, unconfirmed, failed or skipped.
    pub state: String,
    pub detail: String,
}

/// How an alert played at a node down the cascade, as that node's receipt frame said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AreaReceipt {
    /// The node's area code (GB/T 2260).
    pub area: String,
    /// Loudspeakers there that played it.
    pub played: u16,
    /// Loudspeakers there that it was sent to.
    pub loudspeakers: u16,
    /// The bearer the alert reached that node over: ip, radio, beidou, iridium, sms.
    pub bearer: String,
    /// The receipt frame's sequence number: a higher one is the newer count.
    pub sequence: u32,
    pub updated_at: DateTime<Utc>,
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub operator: String,
    /// submitted, dry-run, confirmed, cancelled, updated, refused, played, ...
    pub action: String,
    pub alert_id: Option<i64>,
    pub detail: String,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("time {s:?}: {e}")))
}

impl Store {
    /// Opens (creating) `state_dir/alerts.sqlite3` and starts the database thread.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let path = state_dir.join("alerts.sqlite3");
        let open_error = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let connection = crate::durable::open(&path, SCHEMA).map_err(open_error)?;
        let (jobs, queue) = std_mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("alert-store".into())
            .spawn(move || run(connection, queue))
            .map_err(|e| StoreError::Conflict(format!("cannot start the database thread: {e}")))?;
        Ok(Store { jobs })
    }

    /// Runs `work` on the database inside the current group's transaction and
    /// returns its result once the group is committed.
    pub async fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |connection| {
            let result = work(connection);
            let ok = result.is_ok();
            (
                ok,
                Box::new(move |committed| {
                    let result = match result {
                        Ok(_) if !committed => Err(StoreError::Stopped),
                        other => other,
                    };
                    let _ = reply.send(result);
                }),
            )
        });
        self.jobs.send(job).map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }

    /// Stores a new alert with a pending receipt per loudspeaker it targets and an
    /// audit line; when `new.stop_replaced`, in the same transaction, stops the live
    /// alerts it replaces (a CAP Cancel, or an Update that needs no confirmation).
    /// Returns its id and the alerts it stopped. The same sender and identifier twice
    /// is a conflict.
    pub async fn insert(&self, new: NewAlert, now: DateTime<Utc>) -> Result<Inserted, StoreError> {
        self.call(move |db| {
            let NewAlert {
                alert,
                state,
                operator,
                cap,
                loudspeakers,
                stop_replaced,
            } = new;
            let body = serde_json::to_string(&alert)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let exists: Option<i64> = db
                .query_row(
                    "SELECT id FROM alerts WHERE sender = ?1 AND identifier = ?2",
                    params![alert.sender, alert.identifier],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = exists {
                return Err(StoreError::Conflict(format!(
                    "alert {} from {} is already stored as {id}",
                    alert.identifier, alert.sender
                )));
            }
            db.execute(
                "INSERT INTO alerts (identifier, sender, sent, state, level, submitted_by, created_at, updated_at, body, cap, audio)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10)",
                params![
                    alert.identifier,
                    alert.sender,
                    time(alert.sent),
                    state.as_str(),
                    alert.level.as_str(),
                    operator,
                    time(now),
                    body,
                    cap,
                    alert.audio
                ],
            )?;
            let id = db.last_insert_rowid();
            for skipped in &alert.skipped {
                insert_receipt(db, id, &skipped.name, "", "skipped", &skipped.reason, now)?;
            }
            for loudspeaker in &loudspeakers {
                insert_receipt(db, id, loudspeaker, "", "pending", "not played yet", now)?;
            }
            audit(
                db,
                now,
                &operator,
                "submitted",
                Some(id),
                &format!(
                    "{} {} {} {:?} to {}",
                    alert.purpose,
                    alert.level,
                    alert.msg_type,
                    alert.headline,
                    alert.targets.join(", ")
                ),
            )?;
            let stopped = if stop_replaced {
                stop_replaced_alerts(db, id, &alert, &operator, now)?
            } else {
                Vec::new()
            };
            Ok(Inserted { id, stopped })
        })
        .await
    }

    /// A second operator confirms alert `id`; in the same transaction the alerts it
    /// replaces stop. An expired alert cannot be confirmed: it is marked expired.
    pub async fn confirm(
        &self,
        id: i64,
        operator: String,
        now: DateTime<Utc>,
    ) -> Result<Inserted, StoreError> {
        let result = self
            .call({
                let operator = operator.clone();
                move |db| {
                    let record = read_alert(db, id)?.ok_or(StoreError::NotFound(id))?;
                    if record.state == AlertState::AwaitingConfirmation
                        && record.alert.expires <= now
                    {
                        return Ok(None);
                    }
                    apply_transition(db, id, Transition::confirm(), &operator, now)?;
                    let stopped = stop_replaced_alerts(db, id, &record.alert, &operator, now)?;
                    Ok(Some(Inserted { id, stopped }))
                }
            })
            .await?;
        match result {
            Some(inserted) => Ok(inserted),
            None => {
                self.set_progress(
                    id,
                    AlertState::Expired,
                    0,
                    Some("expired before anyone confirmed it".into()),
                    now,
                )
                .await?;
                Err(StoreError::Conflict(format!(
                    "alert {id} expired before it was confirmed; send it again if it still applies"
                )))
            }
        }
    }

    /// The alert with `id`.
    pub async fn get(&self, id: i64) -> Result<AlertRecord, StoreError> {
        self.call(move |db| read_alert(db, id)?.ok_or(StoreError::NotFound(id)))
            .await
    }

    /// The recorded speech that came with alert `id`, if any.
    pub async fn audio(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.call(move |db| {
            let audio: Option<Option<Vec<u8>>> = db
                .query_row("SELECT audio FROM alerts WHERE id = ?1", params![id], |r| {
                    r.get(0)
                })
                .optional()?;
            audio.ok_or(StoreError::NotFound(id))
        })
        .await
    }

    /// The local id of the alert `sender` sent as `identifier`.
    pub async fn find(
        &self,
        sender: String,
        identifier: String,
    ) -> Result<Option<i64>, StoreError> {
        self.call(move |db| {
            Ok(db
                .query_row(
                    "SELECT id FROM alerts WHERE sender = ?1 AND identifier = ?2",
                    params![sender, identifier],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    /// Alerts, newest first: those not yet final, or all of the last `limit`.
    pub async fn list(
        &self,
        active_only: bool,
        limit: u32,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        self.call(move |db| {
            let mut statement = db.prepare(
                "SELECT id FROM alerts WHERE (?1 = 0 OR state IN ('accepted', 'awaiting_confirmation', 'queued', 'playing'))
                 ORDER BY id DESC LIMIT ?2",
            )?;
            let ids: Vec<i64> = statement
                .query_map(params![active_only, limit], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(read_alert(db, id)?);
            }
            Ok(out)
        })
        .await
    }

    /// Applies `change` to alert `id` for `operator`, with an audit line, and
    /// returns the updated record. A change from a state not in `change.from` is a
    /// conflict naming the state the alert is in.
    pub async fn transition(
        &self,
        id: i64,
        change: Transition,
        operator: String,
        now: DateTime<Utc>,
    ) -> Result<AlertRecord, StoreError> {
        self.call(move |db| apply_transition(db, id, change, &operator, now))
            .await
    }

    /// Playout's record of an alert's own progress: the state, and how many plays
    /// have begun. Written before the play it counts is heard, so a crash can lose a
    /// repeat but never play one twice.
    pub async fn set_progress(
        &self,
        id: i64,
        state: AlertState,
        plays_started: u32,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.call(move |db| {
            let changed = db.execute(
                "UPDATE alerts SET state = ?2, plays_started = MAX(plays_started, ?3), updated_at = ?4,
                 state_reason = COALESCE(?5, state_reason)
                 WHERE id = ?1 AND state NOT IN ('done', 'cancelled', 'expired', 'failed')",
                params![id, state.as_str(), plays_started, time(now), reason],
            )?;
            if changed == 1 && state.is_final() {
                close_pending_receipts(db, id, state, now)?;
                audit(db, now, "playout", state.as_str(), Some(id), &format!("{plays_started} plays"))?;
            }
            Ok(())
        })
        .await
    }

    /// Records receipts for alert `id`, replacing earlier ones of the same loudspeakers.
    pub async fn put_receipts(
        &self,
        id: i64,
        receipts: Vec<Receipt>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.call(move |db| {
            if read_alert(db, id)?.is_none() {
                return Err(StoreError::NotFound(id));
            }
            for r in &receipts {
                insert_receipt(db, id, &r.loudspeaker, &r.via, &r.state, &r.detail, now)?;
            }
            Ok(())
        })
        .await
    }

    pub async fn receipts(&self, id: i64) -> Result<Vec<Receipt>, StoreError> {
        self.call(move |db| read_receipts(db, id)).await
    }

    /// Records the receipt a node down the cascade sent for alert `id`, replacing its
    /// earlier one when this one is newer (a higher frame sequence): a retried copy of
    /// an older receipt that arrives late changes nothing.
    pub async fn put_area_receipt(&self, id: i64, receipt: AreaReceipt) -> Result<(), StoreError> {
        self.call(move |db| {
            if read_alert(db, id)?.is_none() {
                return Err(StoreError::NotFound(id));
            }
            db.execute(
                "INSERT INTO area_receipts (alert_id, area, played, loudspeakers, bearer, sequence, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (alert_id, area) DO UPDATE SET played = ?3, loudspeakers = ?4,
                 bearer = ?5, sequence = ?6, updated_at = ?7
                 WHERE ?6 > area_receipts.sequence",
                params![
                    id,
                    receipt.area,
                    receipt.played,
                    receipt.loudspeakers,
                    receipt.bearer,
                    receipt.sequence,
                    time(receipt.updated_at)
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Records that `origin` cancelled its alert `number`, before that alert is here or
    /// after: an alert frame that comes later for it is not played.
    pub async fn cancel_from_cascade(
        &self,
        origin: String,
        number: u32,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.call(move |db| {
            db.execute(
                "INSERT OR IGNORE INTO cascade_cancels (origin, number, at) VALUES (?1, ?2, ?3)",
                params![origin, number, time(now)],
            )?;
            Ok(())
        })
        .await
    }

    /// Whether `origin` cancelled its alert `number`.
    pub async fn cancelled_in_cascade(
        &self,
        origin: String,
        number: u32,
    ) -> Result<bool, StoreError> {
        self.call(move |db| {
            Ok(db
                .query_row(
                    "SELECT 1 FROM cascade_cancels WHERE origin = ?1 AND number = ?2",
                    params![origin, number],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
        .await
    }

    /// The receipts of the nodes down the cascade for alert `id`, by area.
    pub async fn area_receipts(&self, id: i64) -> Result<Vec<AreaReceipt>, StoreError> {
        self.call(move |db| {
            let mut statement = db.prepare(
                "SELECT area, played, loudspeakers, bearer, sequence, updated_at FROM area_receipts
                 WHERE alert_id = ?1 ORDER BY area",
            )?;
            let rows = statement.query_map(params![id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u16>(1)?,
                    r.get::<_, u16>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, u32>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (area, played, loudspeakers, bearer, sequence, at) = row?;
                out.push(AreaReceipt {
                    area,
                    played,
                    loudspeakers,
                    bearer,
                    sequence,
                    updated_at: parse_time(&at)?,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Appends a line to the audit log.
    pub async fn audit(
        &self,
        operator: String,
        action: &'static str,
        alert_id: Option<i64>,
        detail: String,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.call(move |db| audit(db, now, &operator, action, alert_id, &detail))
            .await
    }

    /// The audit log, oldest first, from sequence number `after` on.
    pub async fn audit_log(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        self.call(move |db| {
            let mut statement = db.prepare(
                "SELECT seq, at, operator, action, alert_id, detail FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = statement.query_map(params![after, limit], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, at, operator, action, alert_id, detail) = row?;
                out.push(AuditEntry { seq, at: parse_time(&at)?, operator, action, alert_id, detail });
            }
            Ok(out)
        })
        .await
    }
}

fn apply_transition(
    db: &Connection,
    id: i64,
    change: Transition,
    operator: &str,
    now: DateTime<Utc>,
) -> Result<AlertRecord, StoreError> {
    let Transition {
        from,
        to,
        action,
        reason,
    } = change;
    let record = read_alert(db, id)?.ok_or(StoreError::NotFound(id))?;
    if !from.contains(&record.state) {
        return Err(StoreError::Conflict(format!(
            "alert {id} is {}; it cannot be {action}",
            record.state
        )));
    }
    if action == "confirmed" && record.submitted_by == operator {
        return Err(StoreError::Conflict(format!(
            "alert {id} was submitted by {operator}: a second operator must confirm it"
        )));
    }
    db.execute(
        "UPDATE alerts SET state = ?2, state_reason = ?3, updated_at = ?4,
         confirmed_by = CASE WHEN ?5 = 'confirmed' THEN ?6 ELSE confirmed_by END
         WHERE id = ?1",
        params![id, to.as_str(), reason, time(now), action, operator],
    )?;
    if to.is_final() {
        close_pending_receipts(db, id, to, now)?;
    }
    let detail = reason.unwrap_or_else(|| format!("{} -> {}", record.state, to));
    audit(db, now, operator, action, Some(id), &detail)?;
    read_alert(db, id)?.ok_or(StoreError::NotFound(id))
}

/// Stops the live alerts that `alert` (stored as `id`) replaces; those already over
/// are left as they are. Returns the ids stopped.
fn stop_replaced_alerts(
    db: &Connection,
    id: i64,
    alert: &Admitted,
    operator: &str,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    let mut stopped = Vec::new();
    for old in &alert.replaces {
        let change = if alert.msg_type == "Cancel" {
            Transition::cancel(format!(
                "cancelled by CAP Cancel (alert {id}) from {operator}"
            ))
        } else {
            Transition::supersede(id)
        };
        match apply_transition(db, *old, change, operator, now) {
            Ok(_) => stopped.push(*old),
            Err(StoreError::Conflict(_)) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(stopped)
}

/// When an alert ends before it played somewhere, the receipts still pending say so.
fn close_pending_receipts(
    db: &Connection,
    id: i64,
    state: AlertState,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let detail = match state {
        AlertState::Cancelled => "not played: cancelled before it played here",
        AlertState::Expired => "not played: it expired before it played here",
        AlertState::Failed => "not played: the alert could not be made into sound",
        AlertState::Done => return Ok(()),
        _ => return Ok(()),
    };
    db.execute(
        "UPDATE receipts SET state = 'missed', detail = ?2, updated_at = ?3 WHERE alert_id = ?1 AND state = 'pending'",
        params![id, detail, time(now)],
    )?;
    Ok(())
}

fn insert_receipt(
    db: &Connection,
    id: i64,
    loudspeaker: &str,
    via: &str,
    state: &str,
    detail: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO receipts (alert_id, loudspeaker, via, state, detail, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (alert_id, loudspeaker) DO UPDATE SET via = ?3, state = ?4, detail = ?5, updated_at = ?6",
        params![id, loudspeaker, via, state, detail, time(now)],
    )?;
    Ok(())
}

fn audit(
    db: &Connection,
    now: DateTime<Utc>,
    operator: &str,
    action: &str,
    alert_id: Option<i64>,
    detail: &str,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO audit (at, operator, action, alert_id, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![time(now), operator, action, alert_id, detail],
    )?;
    Ok(())
}

fn read_alert(db: &Connection, id: i64) -> Result<Option<AlertRecord>, StoreError> {
    let row = db
        .query_row(
            "SELECT state, state_reason, submitted_by, confirmed_by, created_at, updated_at, plays_started, body
             FROM alerts WHERE id = ?1",
            params![id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, u32>(6)?,
                    r.get::<_, String>(7)?,
                ))
            },
        )
        .optional()?;
    let Some((state, state_reason, submitted_by, confirmed_by, created, updated, plays, body)) =
        row
    else {
        return Ok(None);
    };
    Ok(Some(AlertRecord {
        id,
        state: AlertState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("state {state:?}")))?,
        state_reason,
        submitted_by,
        confirmed_by,
        created_at: parse_time(&created)?,
        updated_at: parse_time(&updated)?,
        plays_started: plays,
        alert: serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    }))
}

fn read_receipts(db: &Connection, id: i64) -> Result<Vec<Receipt>, StoreError> {
    let mut statement = db.prepare(
        "SELECT loudspeaker, via, state, detail FROM receipts WHERE alert_id = ?1 ORDER BY loudspeaker",
    )?;
    let rows = statement.query_map(params![id], |r| {
        Ok(Receipt {
            loudspeaker: r.get(0)?,
            via: r.get(1)?,
            state: r.get(2)?,
            detail: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The database thread: takes every queued job, runs each in its own savepoint of
/// one transaction, commits, then answers them all.
fn run(mut connection: Connection, queue: std_mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let size = group.len();
        let mut replies = Vec::with_capacity(size);
        let committed = match connection.transaction() {
            Ok(mut transaction) => {
                for job in group {
                    match transaction.savepoint() {
                        Ok(savepoint) => {
                            // A job that failed rolls back its own savepoint on drop.
                            let (ok, reply) = job(&savepoint);
                            if ok {
                                if let Err(e) = savepoint.commit() {
                                    warn!(error = %e, "alert database: cannot release a savepoint");
                                }
                            }
                            replies.push(reply);
                        }
                        Err(e) => {
                            warn!(error = %e, "alert database: cannot open a savepoint");
                            // Dropping the job drops its reply channel: the caller sees
                            // `Stopped` instead of waiting for ever.
                            drop(job);
                        }
                    }
                }
                match transaction.commit() {
                    Ok(()) => true,
                    Err(e) => {
                        warn!(error = %e, "alert database: commit failed");
                        false
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "alert database: cannot begin a transaction");
                false
            }
        };
        debug!(size, committed, "alert database group committed");
        for reply in replies {
            reply(committed);
        }
    }
}

#[cfg(test)]
mod tests;

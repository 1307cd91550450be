//! What the relay asks to keep, on disk: `cascade.sqlite` in the cascade's state
//! directory, opened for durable commits (`crate::durable`).
//!
//! * `queued`: frames waiting for a link's acknowledgement, as bytes;
//! * `replay`: the replay memory, one window (JSON) per origin;
//! * `state`: this node's sequence reservation (and, in a store written by an earlier
//!   version, the whole replay memory, still read);
//! * `originated`: this node's alerts and cancels already sent down, so a restart does
//!   not send them again;
//! * `reports`: field reports that reached this node.
//!
//! Every [`Persist`] is one statement, committed when [`CascadeStore::apply`] returns.

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use thiserror::Error;

use super::relay::Persist;
use super::replay::ReplayState;

const FILE_NAME: &str = "cascade.sqlite";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queued (
    link TEXT NOT NULL,
    origin TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (link, origin, sequence)
);
CREATE TABLE IF NOT EXISTS state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS replay (
    origin TEXT PRIMARY KEY,
    window TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS originated (
    key INTEGER PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    text TEXT NOT NULL,
    link TEXT NOT NULL,
    bearer TEXT NOT NULL,
    received TEXT NOT NULL,
    UNIQUE (origin, sequence)
);
";

/// Why the store failed.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cascade database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("cascade database holds a replay memory that does not read: {0}")]
    Replay(serde_json::Error),
    #[error("cascade database holds a replay window for {0:?}, which is not an area code")]
    ReplayOrigin(String),
    #[error("cascade database holds a sequence reservation that does not read: {0:?}")]
    Sequence(String),
}

/// A field report as the district lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StoredReport {
    pub id: i64,
    /// The area code of the node that sent it.
    pub origin: String,
    pub sequence: u32,
    pub text: String,
    /// The link it came over, and the bearer.
    pub link: String,
    pub bearer: String,
    pub received: String,
}

/// The cascade's database.
pub struct CascadeStore {
    connection: Connection,
}

impl CascadeStore {
    pub fn open(state_dir: &Path) -> Result<CascadeStore, StoreError> {
        let path = state_dir.join(FILE_NAME);
        let connection =
            crate::durable::open(&path, SCHEMA).map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        Ok(CascadeStore { connection })
    }

    /// Stores what the relay asked, before anything that follows it is acted on.
    pub fn apply(&self, persist: &Persist) -> Result<(), StoreError> {
        match persist {
            Persist::Queued {
                link,
                origin,
                sequence,
                bytes,
            } => {
                self.connection.execute(
                    "INSERT OR REPLACE INTO queued (link, origin, sequence, bytes) VALUES (?1, ?2, ?3, ?4)",
                    params![link, origin.as_str(), sequence, bytes],
                )?;
            }
            Persist::Done {
                link,
                origin,
                sequence,
            } => {
                self.connection.execute(
                    "DELETE FROM queued WHERE link = ?1 AND origin = ?2 AND sequence = ?3",
                    params![link, origin.as_str(), sequence],
                )?;
            }
            Persist::Replay { origin, window } => {
                let json = serde_json::to_string(window).map_err(StoreError::Replay)?;
                self.connection.execute(
                    "INSERT OR REPLACE INTO replay (origin, window) VALUES (?1, ?2)",
                    params![origin.as_str(), json],
                )?;
            }
            Persist::Sequence(reserved) => self.put("sequence", &reserved.to_string())?,
        }
        Ok(())
    }

    fn put(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.connection.execute(
            "INSERT OR REPLACE INTO state (name, value) VALUES (?1, ?2)",
            params![name, value],
        )?;
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .connection
            .query_row("SELECT value FROM state WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Frames still waiting, by link, in the order they were queued.
    pub fn queued(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT link, bytes FROM queued ORDER BY rowid")?;
        let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The replay memory: each origin's window as last stored. A store written before
    /// windows were kept per origin holds the whole memory in `state`; it is read first,
    /// and the per-origin rows over it.
    pub fn replay(&self) -> Result<ReplayState, StoreError> {
        let mut state = match self.get("replay")? {
            Some(json) => serde_json::from_str(&json).map_err(StoreError::Replay)?,
            None => ReplayState::default(),
        };
        let mut statement = self
            .connection
            .prepare("SELECT origin, window FROM replay")?;
        let rows =
            statement.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (origin, json) = row?;
            let Ok(origin) = origin.parse() else {
                return Err(StoreError::ReplayOrigin(origin));
            };
            let window = serde_json::from_str(&json).map_err(StoreError::Replay)?;
            state.origins.insert(origin, window);
        }
        Ok(state)
    }

    /// The last sequence reservation, `None` on the node's first start.
    pub fn sequence(&self) -> Result<Option<u32>, StoreError> {
        // An unreadable reservation must not restart the numbers at 1.
        match self.get("sequence")? {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| StoreError::Sequence(v)),
        }
    }

    /// Whether this node already sent its alert (or cancel) `key` down the cascade.
    pub fn originated(&self, key: u32) -> Result<bool, StoreError> {
        Ok(self
            .connection
            .query_row("SELECT 1 FROM originated WHERE key = ?1", [key], |_| Ok(()))
            .optional()?
            .is_some())
    }

    pub fn mark_originated(&self, key: u32) -> Result<(), StoreError> {
        self.connection
            .execute("INSERT OR IGNORE INTO originated (key) VALUES (?1)", [key])?;
        Ok(())
    }

    /// Keeps a field report that reached this node; a second copy is ignored.
    pub fn add_report(
        &self,
        origin: &str,
        sequence: u32,
        text: &str,
        link: &str,
        bearer: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.connection.execute(
            "INSERT OR IGNORE INTO reports (origin, sequence, text, link, bearer, received) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![origin, sequence, text, link, bearer, at.to_rfc3339_opts(SecondsFormat::Secs, true)],
        )?;
        Ok(())
    }

    /// The latest `limit` reports, newest first.
    pub fn reports(&self, limit: u32) -> Result<Vec<StoredReport>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT id, origin, sequence, text, link, bearer, received FROM reports ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = statement.query_map([limit], |r| {
            Ok(StoredReport {
                id: r.get(0)?,
                origin: r.get(1)?,
                sequence: r.get(2)?,
                text: r.get(3)?,
                link: r.get(4)?,
                bearer: r.get(5)?,
                received: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::model::AreaCode;

    #[test]
    fn a_replay_memory_stored_whole_by_an_earlier_version_is_read_under_the_new_windows() {
        let dir =
            std::env::temp_dir().join(format!("emcomm-cascade-store-old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let (village, street): (AreaCode, AreaCode) = (
            "410503001001".parse().expect("area"),
            "410503001".parse().expect("area"),
        );
        {
            let store = CascadeStore::open(&dir).expect("open");
            let mut old = ReplayState::default();
            old.record(&village, 5, 50, 64);
            old.record(&street, 9, 90, 64);
            let json = serde_json::to_string(&old).expect("json");
            store.put("replay", &json).expect("the old form");
            // Since then: a newer frame from the street, stored the new way.
            let mut newer = old.clone();
            newer.record(&street, 10, 100, 64);
            let window = newer.origins[&street].clone();
            store
                .apply(&Persist::Replay {
                    origin: street.clone(),
                    window,
                })
                .expect("stored");
        }
        let replay = CascadeStore::open(&dir)
            .expect("reopen")
            .replay()
            .expect("read");
        assert_eq!(
            replay.origins[&village].highest, 5,
            "kept from the old form"
        );
        assert_eq!(replay.origins[&street].highest, 10, "the newer window wins");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn queued_frames_replay_memory_and_sequence_survive_a_reopen_and_done_removes() {
        let dir = std::env::temp_dir().join(format!("emcomm-cascade-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let origin: crate::alert::model::AreaCode = "410503".parse().expect("area");
        {
            let store = CascadeStore::open(&dir).expect("open");
            for sequence in [1, 2] {
                store
                    .apply(&Persist::Queued {
                        link: "street-1".into(),
                        origin: origin.clone(),
                        sequence,
                        bytes: vec![sequence as u8; 4],
                    })
                    .expect("stored");
            }
            store
                .apply(&Persist::Done {
                    link: "street-1".into(),
                    origin: origin.clone(),
                    sequence: 1,
                })
                .expect("done");
            store.apply(&Persist::Sequence(33)).expect("stored");
            let mut replay = ReplayState::default();
            replay.record(&origin, 7, 99, 64);
            let window = replay.origins[&origin].clone();
            store
                .apply(&Persist::Replay {
                    origin: origin.clone(),
                    window,
                })
                .expect("stored");
            let now = Utc::now();
            store
                .add_report("410503001001", 3, "桥梁冲毁", "village-1", "beidou", now)
                .expect("report");
            store
                .add_report("410503001001", 3, "桥梁冲毁", "village-1", "ip", now)
                .expect("a copy, ignored");
        }
        let store = CascadeStore::open(&dir).expect("reopen");
        assert_eq!(
            store.queued().expect("read"),
            vec![("street-1".to_string(), vec![2; 4])]
        );
        assert_eq!(store.sequence().expect("read"), Some(33));
        assert!(store.replay().expect("read").origins.contains_key(&origin));
        let reports = store.reports(10).expect("read");
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].bearer, "beidou");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! SQLite opened so that a commit is on disk when it returns: WAL mode with
//! `synchronous=FULL`. The alert database and the terminals' outbox both open theirs
//! here.

use std::path::Path;

use rusqlite::Connection;

/// Opens (creating) the database at `path` for durable commits and applies `schema`
/// (statements that create what is missing).
pub fn open(path: &Path, schema: &str) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.execute_batch(schema)?;
    Ok(connection)
}

//! Live patches kept across restarts: a JSON file in the node's state directory.
//!
//! The file is replaced whole on every change: written beside the old one, flushed to
//! disk, then renamed over it, so a crash at any moment leaves either the old set or
//! the new set, never a torn file. Permanent patches are not stored: they come from
//! the configuration each start.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::PatchSpec;

/// The file's name inside the state directory.
pub const FILE_NAME: &str = "patches.json";

/// Why the stored patches could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// The stored live patches of one node.
#[derive(Debug, Clone)]
pub struct PatchStore {
    path: PathBuf,
}

impl PatchStore {
    pub fn new(state_dir: &Path) -> PatchStore {
        PatchStore {
            path: state_dir.join(FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored patches; none when the file does not exist yet.
    pub fn load(&self) -> Result<Vec<PatchSpec>, StoreError> {
        let read_error = |reason: String| StoreError::Read {
            path: self.path.clone(),
            reason,
        };
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(read_error(e.to_string())),
        };
        serde_json::from_str(&text).map_err(|e| read_error(e.to_string()))
    }

    /// Replaces the stored set with `patches` (their permanent ones left out).
    pub fn save<'a>(
        &self,
        patches: impl IntoIterator<Item = &'a PatchSpec>,
    ) -> Result<(), StoreError> {
        let live: Vec<&PatchSpec> = patches.into_iter().filter(|p| !p.permanent).collect();
        let write_error = |e: std::io::Error| StoreError::Write {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let text = serde_json::to_string_pretty(&live).map_err(|e| StoreError::Write {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;

        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(write_error)?;
        let partial = self.path.with_extension("json.partial");
        let mut file = File::create(&partial).map_err(write_error)?;
        file.write_all(text.as_bytes()).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        fs::rename(&partial, &self.path).map_err(write_error)?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::{MemberId, PatchMode};

    fn spec(name: &str, number: u16, permanent: bool) -> PatchSpec {
        PatchSpec {
            name: name.into(),
            number,
            members: vec![MemberId::from("tg-1001"), MemberId::from("tg-2002")],
            mode: PatchMode::Simulselect {
                console: MemberId::from("tg-1001"),
            },
            permanent,
        }
    }

    #[test]
    fn live_patches_written_are_read_back_and_permanent_ones_are_not_stored() {
        let dir = std::env::temp_dir().join(format!("emcomm-patch-store-{}", std::process::id()));
        let store = PatchStore::new(&dir);
        assert_eq!(store.load().expect("file system"), vec![]);

        let live = spec("flood", 4, false);
        store
            .save([&live, &spec("base", 1, true)])
            .expect("file system");
        assert_eq!(store.load().expect("file system"), vec![live]);
        fs::remove_dir_all(dir).expect("file system");
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("emcomm-patch-bad-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("file system");
        fs::write(dir.join(FILE_NAME), "[{\"name\": 3").expect("file system");
        let error = PatchStore::new(&dir)
            .load()
            .expect_err("refused")
            .to_string();
        assert!(error.contains("patches.json"), "{error}");
        fs::remove_dir_all(dir).expect("file system");
    }
}

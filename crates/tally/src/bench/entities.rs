//! `--entities FILE`: a saved entity store, so that repeated runs skip generating the
//! entities (setup, not a measurement) and go straight to the measured ingestion.

use super::raw::sqlite_path;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// A saved entity store and the SQLite file of the store under test.
pub struct Saved {
    file: PathBuf,
    db: PathBuf,
}

impl Saved {
    pub fn new(file: &Path, url: &str) -> Result<Saved> {
        let Some(db) = sqlite_path(url) else {
            bail!("--entities needs an SQLite store (it copies the database file)");
        };
        Ok(Saved {
            file: file.to_owned(),
            db,
        })
    }

    pub fn exists(&self) -> bool {
        self.file.exists()
    }

    pub fn display(&self) -> String {
        self.file.display().to_string()
    }

    /// Copies the saved store to the database path, which must not exist yet (the
    /// benchmark needs a fresh store, a copy over a live file would corrupt it, and a
    /// stale ingest log would be folded into the copy).
    pub fn restore(&self) -> Result<()> {
        for f in [
            self.db.clone(),
            sidecar(&self.db, "-wal"),
            sidecar(&self.db, "-ingest"),
        ] {
            if f.exists() {
                bail!(
                    "{} exists: --entities copies the saved store to a new database file",
                    f.display()
                );
            }
        }
        std::fs::copy(&self.file, &self.db)
            .with_context(|| format!("copying {} to {}", self.display(), self.db.display()))?;
        Ok(())
    }

    /// Writes a compacted copy of the store as it is now (its committed state, WAL
    /// included) to the file, through a new file renamed into place, so that an
    /// interrupted save leaves no half-written store to start from.
    pub fn save(&self) -> Result<()> {
        let part = sidecar(&self.file, ".part");
        let _ = std::fs::remove_file(&part);
        let conn = rusqlite::Connection::open(&self.db)?;
        let target = part.to_str().context("a file name that is not UTF-8")?;
        conn.execute("VACUUM INTO ?1", [target])
            .with_context(|| format!("saving the entities to {}", part.display()))?;
        std::fs::rename(&part, &self.file)?;
        Ok(())
    }
}

/// `path` with `suffix` appended to its file name.
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A saved store comes back as it was committed, what only its WAL held included,
    /// and only to a database file that does not exist yet.
    #[test]
    fn a_saved_store_is_restored_to_a_new_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2), (3);")
            .unwrap();
        let file = dir.path().join("saved.db");
        let url = |p: &Path| format!("sqlite://{}", p.display());
        let saved = Saved::new(&file, &url(&db)).unwrap();
        assert!(!saved.exists());
        saved.save().unwrap();
        assert!(saved.exists());
        assert!(saved.restore().is_err(), "restored over a live database");

        let fresh = dir.path().join("b.db");
        Saved::new(&file, &url(&fresh)).unwrap().restore().unwrap();
        let sum: i64 = rusqlite::Connection::open(&fresh)
            .unwrap()
            .query_row("SELECT SUM(x) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sum, 6);
        assert!(Saved::new(&file, "postgres://127.0.0.1/x").is_err());
    }
}

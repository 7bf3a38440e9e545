//! The database's WAL checkpoints on a thread of their own while the ingest log is open.
//!
//! Why: a checkpoint copies every page the WAL holds into the database file and syncs
//! it. Run by SQLite inside the commit that crosses `wal_autocheckpoint`, it ran inside
//! nearly every fold of the ingest log (a fold's run writes ~100 MiB of WAL at scale L)
//! and took 16 % of the fold thread's time there, the one serial stage of ingestion,
//! while the machine was 13 % idle (docs/performance.md, "SQLite: checkpoints beside the
//! fold"). Here a thread of its own checkpoints after every other fold's commit (and
//! after the last before the fold waits for work), while the fold goes on with its next
//! run.
//!
//! What needs care is the WAL's restart. SQLite writes the WAL from its start again only
//! when a writer begins a transaction with every frame already copied into the database
//! (wal.c, `walRestartLog`); a writer that begins its next run at once, while the last
//! one is still being copied, would never find that, and the WAL would grow without end.
//! So once the WAL holds [`RESTART_FRAMES`] frames or more, the fold waits for the
//! checkpoint of its last commit before it begins the next run: the WAL then starts
//! over, and only one checkpoint in several runs is waited for.

use crate::{StoreError, StoreResult};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// WAL frames (pages of 4 KiB: 512 MiB) after which the fold waits for the checkpoint of
/// its last commit, so that its next commit writes the WAL from its start again (see the
/// module's docs). A run at scale L writes ~26,000 frames, so the fold waits about once
/// in five runs.
pub(super) const RESTART_FRAMES: u64 = 131_072;

/// The fold connection's `wal_autocheckpoint` while this thread checkpoints: a bound, in
/// pages, should the thread fall behind or end (the fold's commit then checkpoints, as
/// without this thread).
pub(super) const FALLBACK_AUTOCHECKPOINT: u32 = 2 * RESTART_FRAMES as u32;

/// Fold commits per checkpoint while runs follow one another: a page that the next run
/// changes again (the current day's rollup rows and index pages) is copied once for both.
const COMMITS_PER_CHECKPOINT: u64 = 2;

#[derive(Default)]
struct State {
    /// Checkpoints asked for, and done (each covers every commit before it was asked).
    requested: u64,
    done: u64,
    /// Commits since the last checkpoint asked for.
    unasked: u64,
    /// Frames in the WAL as the last checkpoint found them.
    wal_frames: u64,
    /// No more checkpoints: the thread ends.
    closed: bool,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

/// The checkpoint thread's handle; it ends when this is dropped.
pub(super) struct Checkpointer {
    shared: Shared,
    /// [`RESTART_FRAMES`], but for tests.
    restart_frames: u64,
}

impl Checkpointer {
    /// Opens a connection of its own to the database at `db` and starts the thread.
    pub(super) fn start(db: &Path) -> StoreResult<Checkpointer> {
        Checkpointer::start_with(db, RESTART_FRAMES)
    }

    fn start_with(db: &Path, restart_frames: u64) -> StoreResult<Checkpointer> {
        let conn = rusqlite::Connection::open(db)?;
        // Synced as the commits are: the checkpoint syncs the WAL, then the database.
        conn.pragma_update(None, "synchronous", "FULL")?;
        let shared = Shared::default();
        let thread = shared.clone();
        std::thread::Builder::new()
            .name("tally-checkpoint".into())
            .spawn(move || checkpoint_all(&conn, &thread))
            .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        Ok(Checkpointer {
            shared,
            restart_frames,
        })
    }

    /// After a fold's commit: asks for a checkpoint of what has been committed so far
    /// every [`COMMITS_PER_CHECKPOINT`] commits.
    pub(super) fn committed(&self) {
        let (state, wake) = &*self.shared;
        let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
        s.unasked += 1;
        if s.unasked >= COMMITS_PER_CHECKPOINT {
            ask(&mut s);
            wake.notify_all();
        }
    }

    /// Asks for a checkpoint of every commit so far, if one is not asked for yet (the
    /// fold, before it waits for work).
    pub(super) fn flush(&self) {
        let (state, wake) = &*self.shared;
        let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
        ask_unasked(&mut s, wake);
    }

    /// Before a fold begins its transaction: once the WAL is [`RESTART_FRAMES`] long,
    /// waits until every checkpoint asked for is done, so that the WAL starts over.
    pub(super) fn before_write(&self) {
        let (state, wake) = &*self.shared;
        let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.wal_frames < self.restart_frames {
            return;
        }
        ask_unasked(&mut s, wake);
        while s.done < s.requested && !s.closed {
            s = wake.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        // Every frame is copied: the coming commit starts the WAL over. Without this,
        // the size reported before it would hold up the run after it too, until the
        // checkpoint of that commit reports again.
        s.wal_frames = 0;
    }
}

fn ask(s: &mut State) {
    s.requested += 1;
    s.unasked = 0;
}

/// Asks for a checkpoint if a commit is not covered by one asked for yet.
fn ask_unasked(s: &mut State, wake: &Condvar) {
    if s.unasked > 0 {
        ask(s);
        wake.notify_all();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (state, wake) = &*self.shared;
        state.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
        wake.notify_all();
    }
}

/// The thread: one passive checkpoint (it never waits for readers or writers) per batch
/// of requests, until closed.
fn checkpoint_all(conn: &rusqlite::Connection, shared: &Shared) {
    let (state, wake) = &**shared;
    loop {
        let target = {
            let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
            while s.done == s.requested && !s.closed {
                s = wake.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            if s.closed {
                break;
            }
            s.requested
        };
        // (busy, frames in the WAL, frames copied); -1 for both counts when the WAL
        // could not be read.
        let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        });
        let frames = match result {
            Ok((_, frames)) => u64::try_from(frames).ok(),
            Err(e) => {
                tracing::warn!(error = %e, "a checkpoint of the database's WAL failed");
                None
            }
        };
        let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
        s.done = target;
        if let Some(frames) = frames {
            s.wal_frames = frames;
        }
        wake.notify_all();
    }
    // Waiters see `closed`; nothing else to do.
    wake.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WAL frames in the file at `wal`: a 32-byte header, then frames of a 24-byte
    /// header and a 4 KiB page.
    fn frames(wal: &Path) -> u64 {
        std::fs::metadata(wal).map_or(0, |m| m.len().saturating_sub(32) / (24 + 4096))
    }

    /// A writer that begins its next transaction right after each commit, as the fold
    /// does under a full load, and never checkpoints itself: the WAL still starts over,
    /// so its file stays within some commits of the restart bound (the checkpoint thread
    /// may report a few commits late). Without the wait in `before_write` it grows with
    /// every commit, to ~2,000 frames here.
    #[test]
    fn the_wal_starts_over_under_a_writer_that_never_pauses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut writer = rusqlite::Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
                 CREATE TABLE t (x BLOB NOT NULL);",
            )
            .unwrap();
        let restart = 64;
        let checkpoints = Checkpointer::start_with(&path, restart).unwrap();
        let mut largest = 0;
        for _ in 0..200 {
            checkpoints.before_write();
            let tx = writer.transaction().unwrap();
            // About ten pages of rows per commit.
            for _ in 0..10 {
                tx.execute("INSERT INTO t (x) VALUES (randomblob(3000))", [])
                    .unwrap();
            }
            tx.commit().unwrap();
            checkpoints.committed();
            largest = largest.max(frames(&dir.path().join("t.db-wal")));
        }
        assert!(
            largest > restart,
            "{largest} frames: the test writes too little"
        );
        assert!(largest <= 3 * restart, "{largest} frames");
        let rows: i64 = writer
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2_000);
    }

    /// Under load a checkpoint covers two commits; a commit that no other follows is
    /// copied once the fold, out of work, flushes.
    #[test]
    fn every_other_commit_is_copied_and_the_last_once_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = rusqlite::Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
                 CREATE TABLE t (x BLOB NOT NULL);",
            )
            .unwrap();
        let checkpoints = Checkpointer::start_with(&path, RESTART_FRAMES).unwrap();
        // The database file grows as a checkpoint copies the WAL's pages into it; each
        // commit adds about ten.
        let len = || std::fs::metadata(&path).unwrap().len();
        let commit = || {
            writer
                .execute("INSERT INTO t (x) VALUES (randomblob(40000))", [])
                .unwrap();
            checkpoints.committed();
        };
        let grows_past = |from: u64| {
            (0..500).any(|_| {
                std::thread::sleep(std::time::Duration::from_millis(10));
                len() > from
            })
        };
        let start = len();
        commit();
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(len(), start, "one commit is not copied yet");
        commit();
        assert!(grows_past(start), "the second commit asks for a checkpoint");
        let two = len();
        assert!(two >= start + 80_000, "{two} bytes: both commits copied");
        commit();
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(len(), two, "the third commit is not copied yet");
        checkpoints.flush();
        assert!(grows_past(two), "flushed");
        checkpoints.flush();
    }
}

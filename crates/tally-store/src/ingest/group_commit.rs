//! Group commit for event ingestion: every batch that arrives while the previous group is
//! being written waits in a queue; a writer task takes all of them at once and stores them
//! in one transaction with one durable commit (one fsync), then tells each caller which
//! events of its own batch were new.
//!
//! What a caller sees is what it would see alone: its `Ok` comes only after the commit
//! that holds its events; an id is stored once and the first payload wins (batches are
//! taken in arrival order, and an id in two batches of one group is new only for the
//! earlier one); a re-sent id is a duplicate. If a group fails, each of its batches is
//! written again on its own, so a batch the database refuses fails only its own caller.
//!
//! The writer runs as a task of the runtime the store was opened on, so a batch whose
//! caller gives up (a dropped request) is still written or rolled back as a whole.

use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tally_core::event::Event;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Most events one group takes (batches are whole; the first batch always goes in).
pub(crate) const MAX_GROUP_EVENTS: usize = 32_000;

/// Batches waiting for a writer; a caller beyond this waits to enqueue.
const QUEUE: usize = 256;

/// The batches of one group, in arrival order.
pub(crate) type Batches = Vec<Vec<Event>>;

/// A group that was not stored: why, and its batches when they are still whole, to be
/// written each on its own (`None` once the writer has taken their events).
pub(crate) struct Failed {
    pub(crate) error: StoreError,
    pub(crate) batches: Option<Batches>,
}

impl Failed {
    /// A failure that left `batches` whole.
    pub(crate) fn with(error: impl Into<StoreError>, batches: Batches) -> Failed {
        Failed {
            error: error.into(),
            batches: Some(batches),
        }
    }
}

/// How a backend stores one group.
#[async_trait]
pub(crate) trait WriteGroup: Send + Sync + 'static {
    /// Inserts the events of `Group::new(&batches)` and registers their services in one
    /// transaction, durably, raising the events' data version once for each write of the
    /// group that stored something ([`Group::changed_writes`]); returns, per batch and
    /// event, whether it was new ([`Group::per_batch`]). The writer may take the events
    /// out of `batches` once they are stored.
    async fn write(&self, batches: Batches) -> Result<Vec<Vec<bool>>, Failed>;
}

/// The batches of one transaction.
pub(crate) struct Group<'a> {
    batches: &'a [Vec<Event>],
    events: Vec<&'a Event>,
    /// Per event of `events`: its batch and its place there.
    origin: Vec<(usize, usize)>,
}

impl<'a> Group<'a> {
    pub(crate) fn new(batches: &'a [Vec<Event>]) -> Group<'a> {
        let (events, origin) = if let [batch] = batches {
            (
                batch.iter().collect(),
                (0..batch.len()).map(|i| (0, i)).collect(),
            )
        } else {
            let mut seen = HashSet::new();
            batches
                .iter()
                .enumerate()
                .flat_map(|(b, batch)| batch.iter().enumerate().map(move |(i, e)| (e, (b, i))))
                .filter(|(e, _)| seen.insert(e.id.as_str()))
                .unzip()
        };
        Group {
            batches,
            events,
            origin,
        }
    }

    /// The events to insert: the first occurrence of each id, in arrival order.
    pub(crate) fn events(&self) -> &[&'a Event] {
        &self.events
    }

    /// The events of [`Group::events`] that `new` marks, in order.
    pub(crate) fn marked(&self, new: &[bool]) -> Vec<&'a Event> {
        self.events
            .iter()
            .zip(new)
            .filter(|(_, &n)| n)
            .map(|(&e, _)| e)
            .collect()
    }

    /// Given, per event of [`Group::events`], whether it was new: the same per batch and
    /// event of the batches. An id new in the group is new for the first batch that
    /// holds it only.
    pub(crate) fn per_batch(&self, new: &[bool]) -> Vec<Vec<bool>> {
        let mut flags: Vec<Vec<bool>> = self.batches.iter().map(|b| vec![false; b.len()]).collect();
        for (&(b, i), &new) in self.origin.iter().zip(new) {
            flags[b][i] = new;
        }
        flags
    }

    /// How many of the group's batches stored at least one event, given per event of
    /// [`Group::events`] whether it was new: each is one write that changed data, as if
    /// it had had its own transaction.
    pub(crate) fn changed_writes(&self, new: &[bool]) -> usize {
        let mut changed = vec![false; self.batches.len()];
        for (&(b, _), &new) in self.origin.iter().zip(new) {
            changed[b] |= new;
        }
        changed.into_iter().filter(|&c| c).count()
    }
}

struct Job {
    events: Vec<Event>,
    /// Per event of `events`, whether it was new.
    reply: oneshot::Sender<StoreResult<Vec<bool>>>,
}

/// The queue in front of the writer tasks.
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts `writers` tasks over `writer` on the current runtime. SQLite has one writer;
    /// PostgreSQL can overlap one group's commit with the next group's inserts.
    ///
    /// With a non-zero `linger`, a writer waits up to that long for the callers it expects
    /// before it writes: those of its last group (answered a moment ago, they usually send
    /// their next batch within a few milliseconds) and those whose batches queued while
    /// that group was written. Writing their batches together costs less than writing
    /// them one after another (one commit, and pages that several batches change are
    /// written once). A single caller never waits for anyone; when a caller stops
    /// sending, one group waits out the linger and the next expects one caller fewer.
    pub(crate) fn start<W: WriteGroup>(writer: W, writers: usize, linger: Duration) -> GroupCommit {
        let (queue, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let writer = Arc::new(writer);
        for _ in 0..writers.max(1) {
            tokio::spawn(run(writer.clone(), rx.clone(), linger));
        }
        GroupCommit { queue }
    }

    /// Stores `events` (distinct ids) with whatever else is pending; returns the new ids.
    pub(crate) async fn insert(&self, events: &[&Event]) -> StoreResult<HashSet<String>> {
        let new = self
            .insert_owned(events.iter().map(|&e| e.clone()).collect())
            .await?;
        Ok(events
            .iter()
            .zip(new)
            .filter(|(_, new)| *new)
            .map(|(e, _)| e.id.clone())
            .collect())
    }

    /// [`GroupCommit::insert`] without copying the events: returns, per event, whether
    /// it was new.
    pub(crate) async fn insert_owned(&self, events: Vec<Event>) -> StoreResult<Vec<bool>> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { events, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The writer tasks ended (the runtime that ran them shut down).
fn gone() -> crate::StoreError {
    crate::StoreError::Database(sqlx::Error::WorkerCrashed)
}

async fn run<W: WriteGroup>(writer: Arc<W>, rx: Arc<Mutex<mpsc::Receiver<Job>>>, linger: Duration) {
    // Batches of the last group: their callers are likely to send again right away.
    let mut last_group = 0;
    loop {
        let jobs = {
            let mut rx = rx.lock().await;
            // Batches that queued while the last group was written: other callers.
            let queued = rx.len();
            let idle = tokio::time::Instant::now();
            let Some(first) = rx.recv().await else {
                return;
            };
            let now = tokio::time::Instant::now();
            // Callers that sent nothing for longer than the linger are not waited for.
            let expected = if linger.is_zero() || now - idle > linger {
                0
            } else {
                last_group + queued
            };
            let deadline = now + linger;
            let mut n = first.events.len();
            let mut jobs = vec![first];
            while n < MAX_GROUP_EVENTS {
                let job = match rx.try_recv() {
                    Ok(job) => job,
                    Err(_) if jobs.len() < expected => {
                        match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Some(job)) => job,
                            _ => break,
                        }
                    }
                    Err(_) => break,
                };
                n += job.events.len();
                jobs.push(job);
            }
            jobs
        };
        last_group = jobs.len();
        commit(&*writer, jobs).await;
    }
}

/// Writes `jobs` as one group and answers each; after a failure, each job on its own.
async fn commit<W: WriteGroup>(writer: &W, jobs: Vec<Job>) {
    let (batches, replies): (Batches, Vec<_>) =
        jobs.into_iter().map(|j| (j.events, j.reply)).unzip();
    let several = batches.len() > 1;
    match writer.write(batches).await {
        Ok(flags) => {
            for (mine, reply) in flags.into_iter().zip(replies) {
                let _ = reply.send(Ok(mine));
            }
        }
        Err(Failed {
            error,
            batches: Some(batches),
        }) if several => {
            tracing::warn!(
                error = %error,
                batches = batches.len(),
                "a group of event batches failed; writing each batch on its own"
            );
            for (batch, reply) in batches.into_iter().zip(replies) {
                let answer = match writer.write(vec![batch]).await {
                    Ok(mut flags) => Ok(flags.pop().expect("one batch")),
                    Err(failed) => Err(failed.error),
                };
                let _ = reply.send(answer);
            }
        }
        Err(Failed { error, .. }) => {
            // One error, several callers: each is told the same.
            let message = error.to_string();
            let mut error = Some(error);
            for reply in replies {
                let e = error.take().unwrap_or_else(|| {
                    StoreError::Database(sqlx::Error::Protocol(message.clone()))
                });
                let _ = reply.send(Err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;
    use tally_core::event::EventKind;

    /// A store in memory that records each group it was given.
    #[derive(Default)]
    struct Memory {
        ids: StdMutex<HashSet<String>>,
        /// Per group: events inserted, batches that stored something.
        groups: StdMutex<Vec<(usize, usize)>>,
    }

    #[async_trait]
    impl WriteGroup for Arc<Memory> {
        async fn write(&self, batches: Batches) -> Result<Vec<Vec<bool>>, Failed> {
            let group = Group::new(&batches);
            let events = group.events();
            // Long enough for the other batches to queue up behind the first.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if events.iter().any(|e| e.id == "poison") {
                drop(group);
                return Err(Failed::with(StoreError::Conflict("poison".into()), batches));
            }
            // As a writer that took the events and then failed: nothing to write again.
            if events.iter().any(|e| e.id == "spent") {
                return Err(Failed {
                    error: StoreError::Conflict("spent".into()),
                    batches: None,
                });
            }
            let mut ids = self.ids.lock().unwrap();
            let new: Vec<bool> = events.iter().map(|e| ids.insert(e.id.clone())).collect();
            self.groups
                .lock()
                .unwrap()
                .push((events.len(), group.changed_writes(&new)));
            Ok(group.per_batch(&new))
        }
    }

    fn batch(ids: &[&str]) -> Vec<Event> {
        ids.iter()
            .map(|id| Event::blank(*id, EventKind::Usage, 0))
            .collect()
    }

    async fn send(gc: &Arc<GroupCommit>, ids: &[&str]) -> StoreResult<HashSet<String>> {
        let events = batch(ids);
        let refs: Vec<&Event> = events.iter().collect();
        gc.insert(&refs).await
    }

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// Owned batches are answered per event, in their order: an id new in the group is
    /// new for the first batch that holds it only.
    #[tokio::test]
    async fn owned_batches_are_answered_per_event_in_order() {
        let mem = Arc::new(Memory::default());
        let gc = Arc::new(GroupCommit::start(mem.clone(), 1, Duration::ZERO));
        let first = tokio::spawn({
            let gc = gc.clone();
            async move { gc.insert_owned(batch(&["a"])).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let (b, c) = tokio::join!(
            gc.insert_owned(batch(&["b", "a", "c"])),
            gc.insert_owned(batch(&["c", "d"])),
        );
        assert_eq!(first.await.unwrap().unwrap(), [true]);
        assert_eq!(b.unwrap(), [true, false, true]);
        assert_eq!(c.unwrap(), [false, true]);
        assert_eq!(*mem.groups.lock().unwrap(), vec![(1, 1), (4, 2)]);
    }

    #[tokio::test]
    async fn overlapping_batches_in_one_group_count_each_id_once() {
        let mem = Arc::new(Memory::default());
        let gc = Arc::new(GroupCommit::start(mem.clone(), 1, Duration::ZERO));
        // The first batch occupies the writer; the next three queue and form one group.
        let first = tokio::spawn({
            let gc = gc.clone();
            async move { send(&gc, &["a"]).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let (b, c, d) = tokio::join!(
            send(&gc, &["b", "c"]),
            send(&gc, &["c", "d", "a"]),
            send(&gc, &["d", "e"]),
        );
        assert_eq!(first.await.unwrap().unwrap(), set(&["a"]));
        assert_eq!(b.unwrap(), set(&["b", "c"]));
        assert_eq!(c.unwrap(), set(&["d"]));
        assert_eq!(d.unwrap(), set(&["e"]));
        // One group for the first batch, one for the other three (a, b, c, d, e distinct,
        // a already stored); each of the three stored something.
        assert_eq!(*mem.groups.lock().unwrap(), vec![(1, 1), (5, 3)]);
    }

    #[tokio::test]
    async fn a_batch_whose_ids_an_earlier_batch_of_its_group_took_changed_nothing() {
        let mem = Arc::new(Memory::default());
        let gc = Arc::new(GroupCommit::start(mem.clone(), 1, Duration::ZERO));
        let first = tokio::spawn({
            let gc = gc.clone();
            async move { send(&gc, &["a"]).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let (x, again, a) = tokio::join!(
            send(&gc, &["x", "y"]),
            send(&gc, &["y", "x"]),
            send(&gc, &["a"]),
        );
        assert_eq!(first.await.unwrap().unwrap(), set(&["a"]));
        assert_eq!(x.unwrap(), set(&["x", "y"]));
        assert_eq!(again.unwrap(), set(&[]));
        assert_eq!(a.unwrap(), set(&[]));
        assert_eq!(*mem.groups.lock().unwrap(), vec![(1, 1), (3, 1)]);
    }

    #[tokio::test]
    async fn the_writer_lingers_for_the_callers_of_its_last_group() {
        let mem = Arc::new(Memory::default());
        let linger = Duration::from_millis(300);
        let gc = Arc::new(GroupCommit::start(mem.clone(), 1, linger));
        // A's first batch is written alone; B queues meanwhile. A sends again as soon as it
        // is answered, and the writer, expecting A back, writes B with A's second batch.
        let a = tokio::spawn({
            let gc = gc.clone();
            async move {
                send(&gc, &["a1"]).await.unwrap();
                send(&gc, &["a2"]).await.unwrap();
            }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        send(&gc, &["b1"]).await.unwrap();
        a.await.unwrap();
        assert_eq!(*mem.groups.lock().unwrap(), vec![(1, 1), (2, 2)]);
    }

    #[tokio::test]
    async fn a_single_caller_never_waits_for_others() {
        let mem = Arc::new(Memory::default());
        let gc = Arc::new(GroupCommit::start(mem.clone(), 1, Duration::from_secs(5)));
        let t = std::time::Instant::now();
        for id in ["a", "b", "c"] {
            send(&gc, &[id]).await.unwrap();
        }
        // Three writes of 20 ms each, no linger.
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!(mem.groups.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_failing_batch_fails_only_its_own_caller() {
        let mem = Arc::new(Memory::default());
        let gc = Arc::new(GroupCommit::start(mem.clone(), 1, Duration::ZERO));
        let first = tokio::spawn({
            let gc = gc.clone();
            async move { send(&gc, &["a"]).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let (b, bad, c) = tokio::join!(
            send(&gc, &["b"]),
            send(&gc, &["x", "poison"]),
            send(&gc, &["x", "c"]),
        );
        assert!(first.await.unwrap().is_ok());
        assert_eq!(b.unwrap(), set(&["b"]));
        assert!(bad.is_err());
        // Written alone after the group failed: x is new for this batch.
        assert_eq!(c.unwrap(), set(&["x", "c"]));
        assert_eq!(*mem.ids.lock().unwrap(), set(&["a", "b", "x", "c"]));
    }

    #[tokio::test]
    async fn a_group_whose_batches_the_writer_took_fails_each_of_its_callers() {
        let mem = Arc::new(Memory::default());
        let gc = Arc::new(GroupCommit::start(mem.clone(), 1, Duration::ZERO));
        let first = tokio::spawn({
            let gc = gc.clone();
            async move { send(&gc, &["a"]).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let (b, spent, c) =
            tokio::join!(send(&gc, &["b"]), send(&gc, &["spent"]), send(&gc, &["c"]),);
        assert!(first.await.unwrap().is_ok());
        for answer in [b, spent, c] {
            let e = answer.unwrap_err();
            assert!(e.to_string().contains("spent"), "{e}");
        }
        assert_eq!(*mem.ids.lock().unwrap(), set(&["a"]));
    }
}

//! Group commit: messages from every socket go through a few writer tasks, each storing
//! whatever is queued in one statement per batch.
//!
//! Why: one `INSERT` round trip (and one WAL flush) per message, made by the sender's
//! socket task, caps a PostgreSQL store at a few thousand messages per second. A writer
//! that takes everything queued while its previous batch was committing stores hundreds of
//! rows per round trip and per flush, without waiting on a timer: under light load a batch
//! is one message and costs what it did before; under heavy load batches grow by
//! themselves ("natural" group commit).
//!
//! # Guarantees
//!
//! - **Acknowledged means committed.** A sender's reply comes from a oneshot that the
//!   writer answers only after the batch's statement returned, which for an implicit
//!   transaction is after `COMMIT` (tokio-postgres waits for `ReadyForQuery`). A batch
//!   that fails answers an error to every sender in it and acknowledges none.
//! - **Ids in queue order.** A batch is written in the order its messages entered the
//!   writer's queue, and the store assigns ids in that order (see
//!   [`BatchWrite::write`]); the next batch of the same writer starts after this one
//!   committed, so its ids are higher.
//! - **Broadcast in id order per room.** A room always goes to the same writer (rooms are
//!   sharded by a hash of their name), and that writer runs each message's [`Announce`]
//!   (the room channel's broadcast) itself, in batch order, after the commit and before
//!   waking the sender. If the senders broadcast after being woken instead, as they did
//!   when each ran its own `INSERT`, two senders of one room woken by one commit could be
//!   scheduled in either order and broadcast id 11 before id 10. One task per room's
//!   shard doing both the id order and the broadcast order rules that out.
//! - **Bounded.** The queue holds at most [`WriterConfig::queue`] messages in all (split
//!   evenly over the writers), plus one batch in flight per writer; a message arriving
//!   at a full queue is refused at once with [`StoreError::Busy`], never buffered.
//! - **A retry is stored once.** A message whose `client_id` its author already used in
//!   the room, earlier or in the same batch, is answered with the first message as a
//!   duplicate and not announced (see [`BatchWrite::write`]).
//! - **Other rooms do not hold a sender** beyond the one batch it shares with them: a
//!   sender waits for the batch in flight on its writer (if any) and its own.
//!
//! A sender that gave up before its batch was written (its `TimeoutStore` deadline
//! passed, dropping the oneshot) is left out of the batch: nothing is stored for it.
//! A sender that gave up while its batch was being written got `unavailable`: its
//! message may be stored (the timed-out-write case `TimeoutStore` documents) but is not
//! broadcast, so nobody sees a message its author was told failed. The writer checks
//! that the sender still waits right before announcing; a deadline passing between that
//! check and the answer (microseconds, on the writer's task) is the one window where a
//! message can be broadcast and its sender still told `unavailable`.
//!
//! # Changes go through the same writer
//!
//! An edit, a delete or a reaction ([`Op`]) is queued on its room's writer like a
//! message and applied in queue order with the room's messages (before any of the
//! room's messages queued after it, after those queued before it), then announced by the
//! writer. So a room's new messages and changes take their ids and change sequence
//! numbers (docs/chat.md, "Changes while away") in the order they are committed and
//! broadcast: a page that saw sequence number N on one node has seen every change below
//! it. An op waits for at most the batch in flight and the room's messages queued
//! before it; messages of other rooms queued before it do not hold it.

use std::hash::{Hash, Hasher};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

pub use super::NewMessage;
use super::{Announce, Change, Inserted, Reactor, Refusal, StoreError, StoredMessage};

/// A change to a stored message, applied by its room's writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// An edit or a delete by `author` (checked by the store's statement).
    Change {
        /// Room name.
        room: String,
        /// Message id.
        id: i64,
        /// Who asks (only the message's author may).
        author: String,
        /// What.
        change: Change,
    },
    /// `reactor` toggles `emoji` on a message.
    React {
        /// Room name.
        room: String,
        /// Message id.
        id: i64,
        /// Who.
        reactor: Reactor,
        /// Which emoji.
        emoji: String,
    },
}

impl Op {
    /// The room it changes (its writer's shard).
    pub fn room(&self) -> &str {
        match self {
            Self::Change { room, .. } | Self::React { room, .. } => room,
        }
    }
}

/// An op's answer: the changed message, or why it was refused.
pub type Applied = Result<StoredMessage, Refusal>;

/// Why a batch was not stored.
#[derive(Debug)]
pub enum BatchError {
    /// The database refused a row of the batch (integrity or data error), so the whole
    /// statement was rolled back; the writer then stores the batch's messages one by one
    /// so that only the refused one fails.
    Refused(String),
    /// The database could not be reached or failed; nothing in the batch is stored.
    Failed(StoreError),
}

/// Where a writer stores its batches: one statement per batch, all or nothing.
#[async_trait]
pub trait BatchWrite: Send + 'static {
    /// Stores `batch` and returns the stored messages in the same order, with ids
    /// increasing in that order. Either every message is stored or none is. A message
    /// whose `client_id` its author already used in the room (before or earlier in the
    /// batch) is not stored: it answers the first message, marked as a duplicate.
    async fn write(&mut self, batch: &[NewMessage]) -> Result<Vec<Inserted>, BatchError>;

    /// Applies one op (its own statement or transaction), committed before it returns.
    /// A writer that stores messages only refuses every op.
    async fn apply(&mut self, op: &Op) -> Result<Applied, BatchError> {
        let _ = op;
        Err(BatchError::Failed(StoreError::Unavailable(
            "this writer stores messages only".into(),
        )))
    }

    /// The last `write` (or `apply`) was cancelled at its deadline: whatever it was using may still
    /// owe an answer (a connection behind a partition) and must not be used again.
    fn abandon(&mut self) {}
}

/// Sizes of the group-commit writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterConfig {
    /// Writer tasks, each with its own connection; rooms are spread over them.
    pub writers: usize,
    /// Messages waiting in all the writers' queues together, at most.
    pub queue: usize,
    /// Messages per batch (one statement), at most.
    pub batch: usize,
    /// Deadline of one batch's statement. Past it the batch fails (its senders, already
    /// answered `TimedOut` by their own deadline if it is the same, get `unavailable`)
    /// and the writer drops its connection: without it, a statement stuck behind a
    /// network partition would hold the writer, and every room on it, until TCP gives up.
    pub deadline: std::time::Duration,
}

impl WriterConfig {
    /// Default writer tasks (and connections).
    pub const DEFAULT_WRITERS: usize = 4;
    /// Default queue bound, all writers together.
    pub const DEFAULT_QUEUE: usize = 10_000;
    /// Default batch cap: beyond a few hundred rows a statement gains little per row
    /// and a sender waits longer for the rows before its own.
    pub const DEFAULT_BATCH: usize = 500;
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            writers: Self::DEFAULT_WRITERS,
            queue: Self::DEFAULT_QUEUE,
            batch: Self::DEFAULT_BATCH,
            deadline: super::DEFAULT_STORE_TIMEOUT,
        }
    }
}

struct Pending {
    message: NewMessage,
    announce: Option<Announce>,
    reply: oneshot::Sender<Result<Inserted, StoreError>>,
}

struct PendingOp {
    op: Op,
    announce: Option<Announce>,
    reply: oneshot::Sender<Result<Applied, StoreError>>,
}

/// What a writer's queue holds, in arrival order.
enum Job {
    Insert(Pending),
    Apply(PendingOp),
}

impl Job {
    /// The sender gave up (its deadline passed): nothing to do for it.
    fn abandoned(&self) -> bool {
        match self {
            Self::Insert(p) => p.reply.is_closed(),
            Self::Apply(p) => p.reply.is_closed(),
        }
    }
}

/// The writers' front: [`GroupCommit::insert`] queues a message on its room's writer and
/// waits for the commit. Dropping it stops the writers once their queues are empty.
pub struct GroupCommit {
    shards: Vec<mpsc::Sender<Job>>,
    queue: usize,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("writers", &self.shards.len())
            .field("queue", &self.queue)
            .finish()
    }
}

impl GroupCommit {
    /// Starts `config.writers` writer tasks (on the current Tokio runtime), writer `i`
    /// storing through `sink(i)`.
    pub fn spawn<W: BatchWrite>(config: WriterConfig, mut sink: impl FnMut(usize) -> W) -> Self {
        let writers = config.writers.max(1);
        let per_shard = (config.queue / writers).max(1);
        let batch = config.batch.max(1);
        let shards = (0..writers)
            .map(|i| {
                let (tx, rx) = mpsc::channel(per_shard);
                tokio::spawn(run(rx, sink(i), batch, config.deadline));
                tx
            })
            .collect();
        Self {
            shards,
            queue: per_shard * writers,
        }
    }

    /// Stores a message through its room's writer; `announce` runs once it is committed,
    /// in id order with the room's other messages, before this call returns.
    pub async fn insert(
        &self,
        message: NewMessage,
        announce: Option<Announce>,
    ) -> Result<Inserted, StoreError> {
        self.submit(message, announce)?.await
    }

    /// Queues a message now (so messages submitted one after the other get increasing
    /// ids) and returns the wait for its commit; [`StoreError::Busy`] at once if the
    /// writer's queue is full.
    pub fn submit(
        &self,
        message: NewMessage,
        announce: Option<Announce>,
    ) -> Result<impl std::future::Future<Output = Result<Inserted, StoreError>>, StoreError> {
        let shard = shard_of(&message.room, self.shards.len());
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            message,
            announce,
            reply,
        };
        self.queue_job(shard, Job::Insert(pending))?;
        Ok(async move { answer.await.unwrap_or_else(|_| Err(stopped())) })
    }

    /// Applies `op` through its room's writer, in order with the room's messages;
    /// `announce` runs with the changed message once it is committed, before this call
    /// returns (not for a refusal). [`StoreError::Busy`] at once if the queue is full.
    pub async fn apply(&self, op: Op, announce: Option<Announce>) -> Result<Applied, StoreError> {
        let shard = shard_of(op.room(), self.shards.len());
        let (reply, answer) = oneshot::channel();
        let pending = PendingOp {
            op,
            announce,
            reply,
        };
        self.queue_job(shard, Job::Apply(pending))?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    fn queue_job(&self, shard: usize, job: Job) -> Result<(), StoreError> {
        self.shards[shard].try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Busy(self.queue),
            mpsc::error::TrySendError::Closed(_) => stopped(),
        })
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the store writer has stopped".into())
}

/// The writer of a room: the same for every message of the room, for its whole life.
fn shard_of(room: &str, shards: usize) -> usize {
    // SipHash with fixed keys: stable within the process, which is all the order needs.
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new();
    room.hash(&mut hasher);
    (hasher.finish() % shards as u64) as usize
}

/// One writer: take what is queued (up to `cap`), store it, answer, repeat.
async fn run<W: BatchWrite>(
    mut queue: mpsc::Receiver<Job>,
    mut sink: W,
    cap: usize,
    deadline: std::time::Duration,
) {
    let mut taken = Vec::with_capacity(cap);
    let mut batch: Vec<Pending> = Vec::with_capacity(cap);
    loop {
        if queue.recv_many(&mut taken, cap).await == 0 {
            return; // every sender handle is gone: the store was dropped
        }
        // Senders that already gave up: nothing stored, nobody to answer.
        taken.retain(|job: &Job| !job.abandoned());
        for job in taken.drain(..) {
            match job {
                Job::Insert(pending) => batch.push(pending),
                Job::Apply(op) => {
                    // The room's messages queued before the op are stored first; other
                    // rooms' messages may wait for the next statement.
                    if batch.iter().any(|p| p.message.room == op.op.room()) {
                        write_batch(&mut sink, &mut batch, deadline).await;
                    }
                    apply_op(&mut sink, op, deadline).await;
                }
            }
        }
        if !batch.is_empty() {
            write_batch(&mut sink, &mut batch, deadline).await;
        }
    }
}

/// Applies one op within `deadline` and answers it.
async fn apply_op<W: BatchWrite>(sink: &mut W, pending: PendingOp, deadline: std::time::Duration) {
    if pending.reply.is_closed() {
        return; // gave up while an earlier batch was written
    }
    let applied = match tokio::time::timeout(deadline, sink.apply(&pending.op)).await {
        Ok(applied) => applied,
        Err(_) => {
            sink.abandon();
            Err(BatchError::Failed(StoreError::TimedOut(deadline)))
        }
    };
    let result = match applied {
        Ok(applied) => Ok(applied),
        Err(BatchError::Refused(why)) => Err(StoreError::Unavailable(why)),
        Err(BatchError::Failed(error)) => Err(StoreError::Unavailable(error.to_string())),
    };
    // As for messages: a sender that gave up is not announced.
    if pending.reply.is_closed() {
        return;
    }
    if let (Some(announce), Ok(Ok(message))) = (pending.announce, &result) {
        announce(message);
    }
    let _ = pending.reply.send(result);
}

/// Stores the messages of `taken` (emptied) in one statement, answers each.
async fn write_batch<W: BatchWrite>(
    sink: &mut W,
    taken: &mut Vec<Pending>,
    deadline: std::time::Duration,
) {
    let messages: Vec<NewMessage> = taken
        .iter_mut()
        .map(|p| std::mem::take(&mut p.message))
        .collect();
    metrics::histogram!("chat_store_batch_rows").record(messages.len() as f64);
    let written = match tokio::time::timeout(deadline, sink.write(&messages)).await {
        Ok(written) => written,
        Err(_) => {
            sink.abandon();
            Err(BatchError::Failed(StoreError::TimedOut(deadline)))
        }
    };
    match written {
        Ok(stored) if stored.len() == messages.len() => {
            for (pending, message) in taken.drain(..).zip(stored) {
                answer(pending, Ok(message));
            }
        }
        Ok(stored) => {
            // Cannot tell which row is whose: no ack (an error for a stored message
            // is the timed-out-write case; an ack for an unstored one would be a lie).
            let why = format!(
                "a batch of {} answered {} rows",
                messages.len(),
                stored.len()
            );
            tracing::error!(%why, "store writer");
            for pending in taken.drain(..) {
                answer(pending, Err(StoreError::Unavailable(why.clone())));
            }
        }
        Err(BatchError::Refused(why)) if messages.len() > 1 => {
            tracing::warn!(%why, rows = messages.len(), "batch refused: storing its rows one by one");
            for (pending, message) in taken.drain(..).zip(messages) {
                let one =
                    tokio::time::timeout(deadline, sink.write(std::slice::from_ref(&message)))
                        .await
                        .unwrap_or_else(|_| {
                            sink.abandon();
                            Err(BatchError::Failed(StoreError::TimedOut(deadline)))
                        });
                let one = match one {
                    Ok(mut stored) if stored.len() == 1 => stored.pop().ok_or_else(stopped),
                    Ok(_) => Err(StoreError::Unavailable("a row answered no row".into())),
                    Err(BatchError::Refused(why)) => Err(StoreError::Unavailable(why)),
                    Err(BatchError::Failed(error)) => Err(error),
                };
                answer(pending, one);
            }
        }
        Err(BatchError::Refused(why)) => {
            for pending in taken.drain(..) {
                answer(pending, Err(StoreError::Unavailable(why.clone())));
            }
        }
        Err(BatchError::Failed(error)) => {
            let why = error.to_string();
            for pending in taken.drain(..) {
                answer(pending, Err(StoreError::Unavailable(why.clone())));
            }
        }
    }
}

/// Announces a stored message (in the writer's task, so in id order per room), then
/// wakes its sender.
fn answer(pending: Pending, result: Result<Inserted, StoreError>) {
    // A sender that gave up was told `unavailable`: its message is not announced.
    if pending.reply.is_closed() {
        return;
    }
    // A duplicate was announced when it was first stored.
    if let (Some(announce), Ok(inserted)) = (pending.announce, &result) {
        if !inserted.duplicate {
            announce(&inserted.message);
        }
    }
    let _ = pending.reply.send(result);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::sync::Semaphore;

    use super::*;
    use crate::store::StoredMessage;

    /// Stores in memory; records each batch; can be told to fail or to hold batches.
    #[derive(Clone, Default)]
    struct Fake {
        state: Arc<Mutex<FakeState>>,
        gate: Option<Arc<Semaphore>>,
    }

    #[derive(Default)]
    struct FakeState {
        next_id: i64,
        batches: Vec<usize>,
        rows: Vec<StoredMessage>,
        fail: bool,
        refuse_body: Option<String>,
        /// What the writer did, in order: `write <bodies>` / `apply <room>`.
        log: Vec<String>,
    }

    #[async_trait]
    impl BatchWrite for Fake {
        async fn write(&mut self, batch: &[NewMessage]) -> Result<Vec<Inserted>, BatchError> {
            if let Some(gate) = &self.gate {
                gate.acquire().await.expect("gate open").forget();
            }
            let mut s = self.state.lock().unwrap();
            s.batches.push(batch.len());
            let bodies: Vec<&str> = batch.iter().map(|m| m.body.as_str()).collect();
            s.log.push(format!("write {}", bodies.join(",")));
            if s.fail {
                return Err(BatchError::Failed(StoreError::Unavailable("down".into())));
            }
            if let Some(bad) = &s.refuse_body {
                if batch.iter().any(|m| &m.body == bad) {
                    return Err(BatchError::Refused("refused".into()));
                }
            }
            let mut out = Vec::new();
            for m in batch {
                s.next_id += 1;
                out.push(StoredMessage::stored(s.next_id, String::new(), m));
            }
            s.rows.extend(out.iter().cloned());
            Ok(out
                .into_iter()
                .map(|message| Inserted {
                    message,
                    duplicate: false,
                })
                .collect())
        }

        async fn apply(&mut self, op: &Op) -> Result<Applied, BatchError> {
            let mut s = self.state.lock().unwrap();
            s.log.push(format!("apply {}", op.room()));
            s.next_id += 1;
            let message = StoredMessage::stored(s.next_id, String::new(), &msg(op.room(), "op"));
            Ok(Ok(message))
        }
    }

    fn msg(room: &str, body: impl Into<String>) -> NewMessage {
        NewMessage::plain(room, "u", &body.into())
    }

    fn config(writers: usize, queue: usize, batch: usize) -> WriterConfig {
        WriterConfig {
            writers,
            queue,
            batch,
            ..WriterConfig::default()
        }
    }

    #[tokio::test]
    async fn concurrent_inserts_share_batches_with_ids_in_queue_order() {
        let gate = Arc::new(Semaphore::new(0));
        let fake = Fake {
            gate: Some(gate.clone()),
            ..Fake::default()
        };
        let writer = Arc::new(GroupCommit::spawn(config(1, 1000, 50), |_| fake.clone()));
        // Submitted one after the other, before the writer has run: queue order is
        // submission order.
        let calls: Vec<_> = (0..121)
            .map(|i| tokio::spawn(writer.submit(msg("r", i.to_string()), None).unwrap()))
            .collect();
        gate.add_permits(1_000);
        let mut ids = Vec::new();
        for (i, call) in calls.into_iter().enumerate() {
            let stored = call.await.unwrap().unwrap().message;
            assert_eq!(stored.body, i.to_string(), "each sender gets its own row");
            ids.push(stored.id);
        }
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids in submission order: {ids:?}"
        );
        let batches = fake.state.lock().unwrap().batches.clone();
        assert_eq!(batches.iter().sum::<usize>(), 121);
        assert!(
            batches.iter().all(|&b| b <= 50),
            "batch cap kept: {batches:?}"
        );
        assert!(
            batches.len() <= 5,
            "queued messages were batched: {batches:?}"
        );
    }

    #[tokio::test]
    async fn a_sender_that_gave_up_during_its_batch_is_stored_but_not_announced() {
        let gate = Arc::new(Semaphore::new(0));
        let fake = Fake {
            gate: Some(gate.clone()),
            ..Fake::default()
        };
        let writer = Arc::new(GroupCommit::spawn(config(1, 100, 100), |_| fake.clone()));
        let announced = Arc::new(Mutex::new(Vec::new()));
        let send = |body: &'static str| {
            let (writer, announced) = (writer.clone(), announced.clone());
            tokio::spawn(async move {
                let announce: Announce = Box::new(move |m: &StoredMessage| {
                    announced.lock().unwrap().push(m.body.clone())
                });
                writer.insert(msg("r", body), Some(announce)).await
            })
        };
        let gave_up = send("gave up");
        // The writer takes the message and waits at the gate with it (this test runs on
        // one thread: sleeping lets the writer run until it blocks there).
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // The sender's deadline passes (as TimeoutStore drops the call), then it commits.
        gave_up.abort();
        let _ = gave_up.await;
        gate.add_permits(1);
        while fake.state.lock().unwrap().rows.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // A sender still waiting is announced as ever.
        gate.add_permits(1);
        let kept = send("kept").await.unwrap().unwrap().message;
        assert_eq!(kept.body, "kept");
        assert_eq!(fake.state.lock().unwrap().rows.len(), 2, "both stored");
        assert_eq!(
            *announced.lock().unwrap(),
            ["kept"],
            "only the waiting sender's"
        );
    }

    #[tokio::test]
    async fn a_failing_batch_fails_every_sender_and_acknowledges_none() {
        let gate = Arc::new(Semaphore::new(0));
        let fake = Fake {
            gate: Some(gate.clone()),
            ..Fake::default()
        };
        fake.state.lock().unwrap().fail = true;
        let writer = Arc::new(GroupCommit::spawn(config(1, 100, 100), |_| fake.clone()));
        let announced = Arc::new(Mutex::new(0));
        let calls: Vec<_> = (0..20)
            .map(|i| {
                let (writer, announced) = (writer.clone(), announced.clone());
                tokio::spawn(async move {
                    let announce: Announce = Box::new(move |_| *announced.lock().unwrap() += 1);
                    writer.insert(msg("r", i.to_string()), Some(announce)).await
                })
            })
            .collect();
        gate.add_permits(1_000);
        for call in calls {
            let result = call.await.unwrap();
            assert!(
                matches!(result, Err(StoreError::Unavailable(_))),
                "{result:?}"
            );
        }
        assert_eq!(*announced.lock().unwrap(), 0, "nothing announced");
        assert!(fake.state.lock().unwrap().rows.is_empty());
    }

    #[tokio::test]
    async fn a_refused_row_fails_alone() {
        let gate = Arc::new(Semaphore::new(0));
        let fake = Fake {
            gate: Some(gate.clone()),
            ..Fake::default()
        };
        fake.state.lock().unwrap().refuse_body = Some("bad".into());
        let writer = Arc::new(GroupCommit::spawn(config(1, 100, 100), |_| fake.clone()));
        let bodies = ["a", "bad", "c"];
        let calls: Vec<_> = bodies
            .iter()
            .map(|b| {
                let writer = writer.clone();
                let b = b.to_string();
                tokio::spawn(async move { writer.insert(msg("r", b), None).await })
            })
            .collect();
        gate.add_permits(1_000);
        let results: Vec<_> = futures_join(calls).await;
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        assert!(results[1].is_err());
        let rows = fake.state.lock().unwrap().rows.clone();
        assert_eq!(
            rows.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
    }

    async fn futures_join(
        calls: Vec<tokio::task::JoinHandle<Result<Inserted, StoreError>>>,
    ) -> Vec<Result<Inserted, StoreError>> {
        let mut out = Vec::new();
        for call in calls {
            out.push(call.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_with_busy() {
        let gate = Arc::new(Semaphore::new(0));
        let fake = Fake {
            gate: Some(gate.clone()),
            ..Fake::default()
        };
        let writer = Arc::new(GroupCommit::spawn(config(1, 10, 5), |_| fake.clone()));
        // Submitted without yielding: the writer has taken nothing yet, so ten fit.
        let mut calls = Vec::new();
        for i in 0..10 {
            calls.push(tokio::spawn(
                writer.submit(msg("r", i.to_string()), None).unwrap(),
            ));
        }
        let busy = writer.submit(msg("r", "one too many"), None).map(|_| ());
        assert!(matches!(busy, Err(StoreError::Busy(10))), "{busy:?}");
        gate.add_permits(1_000);
        for call in calls {
            call.await.unwrap().unwrap();
        }
        // Room again once the writer drains.
        writer.insert(msg("r", "later"), None).await.unwrap();
    }

    #[tokio::test]
    async fn broadcasts_follow_id_order_per_room_under_concurrent_senders() {
        let fake = Fake::default();
        let writer = Arc::new(GroupCommit::spawn(config(3, 10_000, 7), |_| fake.clone()));
        let seen: Arc<Mutex<std::collections::HashMap<String, Vec<i64>>>> = Arc::default();
        let mut senders = Vec::new();
        for s in 0..40 {
            let (writer, seen) = (writer.clone(), seen.clone());
            senders.push(tokio::spawn(async move {
                let room = format!("room{}", s % 5);
                for i in 0..25 {
                    let seen = seen.clone();
                    let announce: Announce = Box::new(move |m: &StoredMessage| {
                        seen.lock()
                            .unwrap()
                            .entry(m.room.clone())
                            .or_default()
                            .push(m.id);
                    });
                    writer
                        .insert(msg(&room, format!("{s}/{i}")), Some(announce))
                        .await
                        .unwrap();
                }
            }));
        }
        for s in senders {
            s.await.unwrap();
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.values().map(Vec::len).sum::<usize>(), 1000);
        for (room, ids) in seen.iter() {
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{room}: {ids:?}");
        }
    }

    fn op(room: &str) -> Op {
        Op::Change {
            room: room.into(),
            id: 1,
            author: "u".into(),
            change: Change::Delete,
        }
    }

    /// Holds the writer on a first batch, queues `then` (messages and ops, in order),
    /// releases it: what the writer did, after the first batch.
    async fn order_of(
        then: Vec<Result<(&'static str, &'static str), &'static str>>,
    ) -> Vec<String> {
        let gate = Arc::new(Semaphore::new(0));
        let fake = Fake {
            gate: Some(gate.clone()),
            ..Fake::default()
        };
        let writer = Arc::new(GroupCommit::spawn(config(1, 100, 100), |_| fake.clone()));
        let first = tokio::spawn(writer.submit(msg("z", "first"), None).unwrap());
        // The writer takes it and waits at the gate (this test runs on one thread).
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut calls = Vec::new();
        for job in then {
            match job {
                Ok((room, body)) => {
                    let call = writer.submit(msg(room, body), None).unwrap();
                    calls.push(tokio::spawn(async move { call.await.map(|_| ()) }));
                }
                Err(room) => {
                    let writer = writer.clone();
                    let announce: Announce = Box::new(|_| {});
                    calls.push(tokio::spawn(async move {
                        writer.apply(op(room), Some(announce)).await.map(|_| ())
                    }));
                    // Queued before the next job.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
        gate.add_permits(1_000);
        first.await.unwrap().unwrap();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        let log = fake.state.lock().unwrap().log.clone();
        log[1..].to_vec()
    }

    #[tokio::test]
    async fn an_op_follows_its_rooms_earlier_messages_and_precedes_its_later_ones() {
        assert_eq!(
            order_of(vec![
                Ok(("r", "m1")),
                Err("r"),
                Ok(("r", "m2")),
                Ok(("q", "m3"))
            ])
            .await,
            ["write m1", "apply r", "write m2,m3"]
        );
        // Other rooms' messages queued before it do not hold it back.
        assert_eq!(
            order_of(vec![Ok(("q", "m1")), Err("r"), Ok(("r", "m2"))]).await,
            ["apply r", "write m1,m2"]
        );
    }

    #[tokio::test]
    async fn a_writer_without_ops_refuses_them() {
        struct MessagesOnly;
        #[async_trait]
        impl BatchWrite for MessagesOnly {
            async fn write(&mut self, _: &[NewMessage]) -> Result<Vec<Inserted>, BatchError> {
                Ok(Vec::new())
            }
        }
        let writer = GroupCommit::spawn(config(1, 10, 10), |_| MessagesOnly);
        assert!(matches!(
            writer.apply(op("r"), None).await,
            Err(StoreError::Unavailable(_))
        ));
    }

    #[test]
    fn a_room_always_goes_to_the_same_writer() {
        for room in ["a", "lobby", "x.y-z"] {
            let first = shard_of(room, 4);
            assert!((0..10).all(|_| shard_of(room, 4) == first));
            assert!(first < 4);
        }
    }
}

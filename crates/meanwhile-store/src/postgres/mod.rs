//! The PostgreSQL store: every node of a fleet runs one against the same database.
//!
//! Each write is one transaction on a pooled connection. The rows of its change are
//! written as it goes; what goes into the shared, ordered logs (events, the
//! notifications sessions drain, the audit chain) and the per-state counters is
//! buffered in [`Tx`] and written at the very end, just before the commit. The
//! counters go to a shard of the connection's own. The log entries go into inboxes
//! under the write's place in line, which the [`sequencer`] moves into the logs
//! after the commit, numbered in that order: an event's `seq` is gap-free, a
//! follower that reads `seq` 11 can never still be missing 10, and every audit
//! record chains onto the one before it. No lock is shared by all writes: they
//! commit side by side, and only the numbering, one batch at a time, takes turns.
//! Deadlocks among task rows that remain possible (and serialization failures) are
//! retried.

mod audit;
mod client;
mod follow;
mod ops;
#[cfg(feature = "plans")]
mod plans;
mod retention;
mod schema;
mod sequencer;

use crate::chain::{self, Entry};
use crate::flow;
use crate::{
    AlertStore, AuditStore, BudgetStore, EventStore, LifecycleStore, NodeStore, QueueStore,
    ScheduleStore, SessionStore, TaskStore, TokenStore,
};
use crate::{
    AttemptEnd, Charged, Claim, ClaimRequest, CleanRequest, Finished, Fired, ListFilter, NewAlert,
    NewTask, Page, PruneRequest, Pruned, ScheduleFiring, Settled, StopOutcome, Store, StoreError,
    StoreFuture, Submitted, SubmittedAndClaimed, TakeOver,
};
use crate::{AuditKey, StoredToken};
pub(crate) use client::Client;
use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{
    Actor, AuditFilter, AuditPage, AuditVerdict, EventKind, NodeBeat, NodeRow, TokenInfo,
};
use meanwhile_core::{
    Alert, AlertKind, Attempt, BudgetInfo, BudgetSpec, Event, Notification, Progress, QueueInfo,
    ScheduleInfo, ScheduleSpec, TaskId, TaskRecord, TaskState, Timestamp,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Config, NoTls, Row};

type Result<T> = std::result::Result<T, StoreError>;
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Connections one store opens at most; more callers wait for one to be free.
const MAX_CONNECTIONS: usize = 16;
/// Times a write is run again after a deadlock or a serialization failure.
const MAX_RETRIES: u32 = 8;

/// The text of a PostgreSQL error, with the server's message when there is one
/// (the driver's own `Display` says only "db error").
pub(crate) fn describe_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// A [`Store`] on a PostgreSQL database shared by every node of a fleet.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    pool: Pool,
    follow: Arc<follow::Follow>,
    stamper: sequencer::Stamper,
}

/// Makes the pool's connections: the store's own [`Client`]s, each with its cache of
/// prepared statements. A connection the server closed is not handed out again.
struct Connector(Config);

type Pool = deadpool::managed::Pool<Connector>;

impl deadpool::managed::Manager for Connector {
    type Type = Client;
    type Error = tokio_postgres::Error;

    async fn create(&self) -> std::result::Result<Client, tokio_postgres::Error> {
        let (client, connection) = self.0.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("a PostgreSQL connection ended: {}", describe_error(&e));
            }
        });
        Ok(Client::new(client))
    }

    async fn recycle(
        &self,
        client: &mut Client,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<tokio_postgres::Error> {
        if client.is_closed() {
            return Err(deadpool::managed::RecycleError::message(
                "the connection is closed",
            ));
        }
        Ok(())
    }
}

/// A connection taken from the pool: given back by [`Conn::release`], closed when
/// dropped otherwise, so a connection left in an unknown state (a transaction cut
/// off midway) is never reused.
pub(crate) struct Conn(Option<deadpool::managed::Object<Connector>>);

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.0
            .as_ref()
            .expect("a connection is held until released")
    }
}

impl Conn {
    fn release(mut self) {
        // Dropped as the pool's object, it goes back to the pool.
        drop(self.0.take());
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            // Taken out of the pool, the client is dropped and its connection closed.
            drop(deadpool::managed::Object::take(object));
        }
    }
}

/// True when the server has ICU's root collation, with which the text filter folds
/// Unicode case; learnt at the first connect (a fleet runs one server build).
static ICU: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

pub(crate) fn icu() -> bool {
    ICU.get().copied().unwrap_or(false)
}

impl PgStore {
    /// Connects to the database `url` names (a `postgres://` URL or `key=value`
    /// pairs) and migrates it.
    pub async fn connect(url: &str) -> Result<PgStore> {
        let config: Config = url.parse().map_err(StoreError::Postgres)?;
        PgStore::connect_with(config).await
    }

    /// Connects with a driver configuration and migrates the database.
    pub async fn connect_with(config: Config) -> Result<PgStore> {
        let (events, _) = broadcast::channel(4096);
        let store = PgStore {
            inner: Arc::new(Inner {
                pool: Pool::builder(Connector(config.clone()))
                    .max_size(MAX_CONNECTIONS)
                    .build()
                    .map_err(|e| StoreError::Invalid {
                        field: "database_url",
                        message: format!("the connection pool: {e}"),
                    })?,
                config,
                follow: Arc::new(follow::Follow::new(events)),
                stamper: sequencer::Stamper::default(),
            }),
        };
        let conn = store.conn().await?;
        schema::migrate(&conn).await?;
        let icu = conn
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu')",
                &[],
            )
            .await?;
        let _ = ICU.set(col(&icu, 0)?);
        let row = conn
            .query_one("SELECT events_seq FROM log_head WHERE id = 1", &[])
            .await?;
        conn.release();
        // Subscribers hear of what commits from now on.
        store.inner.follow.start_after(col(&row, 0)?);
        tokio::spawn(follow::run(Arc::downgrade(&store.inner)));
        Ok(store)
    }

    /// The store's list, filter and claim queries with sample parameters, for the
    /// test of the indexes they use (feature `plans`).
    #[cfg(feature = "plans")]
    #[doc(hidden)]
    pub fn planned_queries(&self) -> Vec<crate::plans::PlannedQuery> {
        plans::queries(icu())
    }

    /// PostgreSQL's generic plan of `sql` with `params` and sequential scans off, as
    /// `EXPLAIN (FORMAT JSON)` gives it.
    #[cfg(feature = "plans")]
    #[doc(hidden)]
    pub async fn explain(
        &self,
        sql: &str,
        params: &[crate::plans::Param],
    ) -> Result<serde_json::Value> {
        let conn = self.conn().await?;
        let plan = plans::explain(&conn, sql, params).await?;
        conn.release();
        Ok(plan)
    }

    async fn conn(&self) -> Result<Conn> {
        match self.inner.pool.get().await {
            Ok(object) => Ok(Conn(Some(object))),
            Err(deadpool::managed::PoolError::Backend(e)) => Err(StoreError::Postgres(e)),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// Runs `f` on a pooled connection, outside any transaction.
    fn read<'s, D, T>(
        &'s self,
        data: D,
        f: for<'t> fn(&'t Client, &'t D) -> BoxFuture<'t, Result<T>>,
    ) -> StoreFuture<'s, T>
    where
        D: Send + Sync + 's,
        T: Send + 's,
    {
        Box::pin(async move {
            let conn = self.conn().await?;
            let r = f(&conn, &data).await;
            conn.release();
            r
        })
    }

    /// Runs `f` in a transaction of its own, made by the caller's actor (see
    /// [`crate::acting`]), again from the start after a deadlock or a
    /// serialization failure; publishes the events it recorded once it commits.
    fn write<'s, D, T>(
        &'s self,
        data: D,
        f: for<'t> fn(&'t mut Tx, &'t D) -> BoxFuture<'t, Result<T>>,
    ) -> StoreFuture<'s, T>
    where
        D: Send + Sync + 's,
        T: Send + 's,
    {
        let actor = crate::current_actor();
        Box::pin(async move {
            let mut tries = 0;
            loop {
                let conn = self.conn().await?;
                conn.batch_execute("BEGIN").await?;
                let mut tx = Tx {
                    conn,
                    log: Log::default(),
                    actor: actor.clone(),
                };
                let result = match f(&mut tx, &data).await {
                    Ok(v) => tx.commit().await.map(|done| (v, done)),
                    Err(e) => {
                        tx.rollback().await;
                        Err(e)
                    }
                };
                match result {
                    Ok((v, (conn, appended))) => {
                        if !appended || self.stamp(&conn).await {
                            conn.release();
                        }
                        return Ok(v);
                    }
                    Err(e) if tries < MAX_RETRIES && retryable(&e) => {
                        tries += 1;
                        tracing::debug!("a write is run again after: {e}");
                    }
                    Err(e) => return Err(e),
                }
            }
        })
    }

    /// Moves what committed writes left in the inboxes into the logs, and publishes
    /// the events; returns once a stamp begun after this call has ended. The write
    /// before it has committed whatever happens here: a failure is logged and counted
    /// (`Store::background`) and left to the next stamp (the follower's poll makes
    /// one). False after a failure: the connection may be left in a transaction, and
    /// is closed rather than reused.
    async fn stamp(&self, c: &Client) -> bool {
        let follow = &self.inner.follow;
        match self
            .inner
            .stamper
            .after_commit(c, |events| follow.committed(events))
            .await
        {
            Ok(()) => true,
            // Logged and counted by the stamper (the loop `sequencer`).
            Err(_) => {
                follow.kick();
                false
            }
        }
    }
}

/// A deadlock or a serialization failure: the transaction was rolled back and may
/// simply run again.
fn retryable(e: &StoreError) -> bool {
    let StoreError::Postgres(e) = e else {
        return false;
    };
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

/// What a write appends to the shared logs and counters, written at its commit.
#[derive(Default)]
struct Log {
    /// Events, their `seq` given by the sequencer after the commit.
    events: Vec<Event>,
    /// Notifications: session, task, body.
    notifications: Vec<(String, i64, String)>,
    /// Changes of the per-state counters.
    counts: Vec<(String, TaskState, i64)>,
    /// Audit records of changes that have no event (tokens).
    audit: Vec<Entry>,
    /// Where the events of what meanwhile does by itself begin, when the write
    /// does something of its own after its caller's change (a claim with a submit).
    own_from: Option<usize>,
}

/// Where a [`Log`] stood when a part of a write began, to take back what a failed
/// part appended.
#[derive(Clone, Copy)]
struct Mark(usize, usize, usize, usize);

/// One write's transaction.
pub(crate) struct Tx {
    conn: Conn,
    log: Log,
    actor: Actor,
}

impl Tx {
    pub(crate) fn client(&self) -> &Client {
        &self.conn
    }

    /// Appends an event (its `seq` is given by the sequencer after the commit).
    pub(crate) fn emit(
        &mut self,
        at: Timestamp,
        kind: EventKind,
        task_id: Option<TaskId>,
        data: serde_json::Value,
    ) {
        self.log.events.push(Event {
            seq: 0,
            at,
            kind,
            task_id,
            data,
        });
    }

    /// Leaves a notification for `session`.
    pub(crate) fn notify(&mut self, session: &str, task: TaskId, body: String) {
        self.log
            .notifications
            .push((session.to_string(), task.0, body));
    }

    /// Counts one task more (or less) in `state`.
    pub(crate) fn bump(&mut self, queue: &str, state: TaskState, delta: i64) {
        self.log.counts.push((queue.to_string(), state, delta));
    }

    /// Moves one task's count from `from` to `to`.
    pub(crate) fn count_move(&mut self, queue: &str, from: TaskState, to: TaskState) {
        if from != to {
            self.bump(queue, from, -1);
            self.bump(queue, to, 1);
        }
    }

    /// The events appended from here on record what meanwhile does by itself in
    /// this write, not what its caller asked: they are audited as meanwhile's.
    pub(crate) fn own_doing_from_here(&mut self) {
        self.log.own_from = Some(self.log.events.len());
    }

    /// Records a change that has no event in the audit trail.
    pub(crate) fn record(&mut self, entry: Entry) {
        self.log.audit.push(entry);
    }

    /// Inserts tasks, each in a part of its own (an invalid one does not stop the
    /// others).
    async fn insert_parts(&mut self, tasks: &[NewTask]) -> Result<Vec<Result<Submitted>>> {
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            let mark = self.begin_part().await?;
            let r = ops::insert_task(self, t).await;
            out.push(self.end_part(mark, r).await?);
        }
        Ok(out)
    }

    /// Claims, when asked, in a part of its own (a failed claim keeps what came
    /// before it in the write).
    async fn claim_part(&mut self, req: Option<&ClaimRequest>) -> Result<Option<Result<Claim>>> {
        let Some(req) = req else {
            return Ok(None);
        };
        let mark = self.begin_part().await?;
        let r = ops::claim(self, req).await;
        Ok(Some(self.end_part(mark, r).await?))
    }

    /// Opens a part of the write: one that fails leaves no trace (see
    /// [`Tx::end_part`]).
    async fn begin_part(&mut self) -> Result<Mark> {
        self.conn.batch_execute("SAVEPOINT part").await?;
        let l = &self.log;
        Ok(Mark(
            l.events.len(),
            l.notifications.len(),
            l.counts.len(),
            l.audit.len(),
        ))
    }

    /// Closes a part: kept when `r` is a success, undone otherwise. The outer error
    /// means the savepoint itself failed, which puts the whole write in doubt.
    async fn end_part<T>(&mut self, mark: Mark, r: Result<T>) -> Result<Result<T>> {
        if r.is_ok() {
            self.conn.batch_execute("RELEASE SAVEPOINT part").await?;
        } else {
            self.conn
                .batch_execute("ROLLBACK TO SAVEPOINT part; RELEASE SAVEPOINT part")
                .await?;
            let l = &mut self.log;
            l.events.truncate(mark.0);
            l.notifications.truncate(mark.1);
            l.counts.truncate(mark.2);
            l.audit.truncate(mark.3);
        }
        Ok(r)
    }

    async fn rollback(self) {
        match self.conn.batch_execute("ROLLBACK").await {
            Ok(()) => self.conn.release(),
            // The connection is dropped, which ends the transaction too.
            Err(e) => tracing::warn!("rolling back failed: {}", describe_error(&e)),
        }
    }

    /// Writes the counters and puts the buffered appends in line, then commits;
    /// gives the connection back, with whether anything waits in the inboxes.
    async fn commit(mut self) -> Result<(Conn, bool)> {
        let appended = match self.flush().await {
            Ok(appended) => appended,
            Err(e) => {
                self.rollback().await;
                return Err(e);
            }
        };
        self.conn
            .batch_execute("COMMIT")
            .await
            .map_err(|e| StoreError::CommitFailed(describe_error(&e)))?;
        Ok((self.conn, appended))
    }

    async fn flush(&mut self) -> Result<bool> {
        // Counters in one order for every writer, so that two writers never hold
        // one counter each while waiting for the other's; each connection counts
        // in a shard of its own, so writers seldom share a counter row at all.
        let mut counts: BTreeMap<(String, &'static str), i64> = BTreeMap::new();
        for (queue, state, delta) in self.log.counts.drain(..) {
            *counts.entry((queue, state.as_str())).or_default() += delta;
        }
        counts.retain(|_, delta| *delta != 0);
        let (keys, deltas): (Vec<_>, Vec<i64>) = counts.into_iter().unzip();
        let (queues, states): (Vec<String>, Vec<&str>) = keys.into_iter().unzip();
        let count = async {
            if deltas.is_empty() {
                return Ok(0);
            }
            self.conn
                .execute(
                    "INSERT INTO counts (queue, state, shard, n)
                     SELECT queue, state, pg_backend_pid() % 16, n
                     FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[])
                     WITH ORDINALITY AS u(queue, state, n, i) ORDER BY i
                     ON CONFLICT (queue, state, shard) DO UPDATE SET n = counts.n + excluded.n",
                    &[&queues, &states, &deltas],
                )
                .await
                .map_err(StoreError::from)
        };
        let log = std::mem::take(&mut self.log);
        let own_from = log
            .own_from
            .map_or(log.events.len(), |i| i.min(log.events.len()));
        let mut entries = chain::entries(&log.events[..own_from]);
        entries.extend(log.audit);
        let own = chain::entries(&log.events[own_from..]);
        let mut audit = Vec::with_capacity(entries.len() + own.len());
        if !entries.is_empty() {
            let actor = chain::actor_text(&self.actor)?;
            audit.extend(entries.into_iter().map(|e| (e, actor.clone())));
        }
        if !own.is_empty() {
            let actor = chain::actor_text(&Actor::Meanwhile)?;
            audit.extend(own.into_iter().map(|e| (e, actor.clone())));
        }
        let appends = sequencer::Appends {
            events: log.events,
            notices: log.notifications,
            audit,
        };
        let enqueue = async {
            if appends.is_empty() {
                return Ok(());
            }
            sequencer::enqueue(&self.conn, &appends).await
        };
        // Both in one round trip: the driver sends the second before the first's
        // answer comes.
        tokio::try_join!(count, enqueue)?;
        Ok(!appends.is_empty())
    }
}

/// A column, or a clear error when it does not hold what the store wrote.
pub(crate) fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(StoreError::Postgres)
}

/// Parameters as the driver takes them.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Store for PgStore {
    fn is_shared(&self) -> bool {
        true
    }

    fn background(&self) -> Vec<meanwhile_core::http::LoopHealth> {
        [&self.inner.stamper.health, &self.inner.follow.health]
            .into_iter()
            .filter_map(|meter| meter.report())
            .collect()
    }

    fn seal_clear_secrets(&self, seal: crate::secrets::Seal) -> StoreFuture<'_, u64> {
        self.write(seal, |tx, seal| {
            Box::pin(async move { ops::seal_clear_secrets(tx, seal).await })
        })
    }

    fn prune(&self, req: PruneRequest) -> StoreFuture<'_, Pruned> {
        self.write(req, |tx, req| Box::pin(retention::prune(tx, req)))
    }
}

impl TaskStore for PgStore {
    fn submit(&self, tasks: Vec<NewTask>) -> StoreFuture<'_, Vec<Result<Submitted>>> {
        self.write(tasks, |tx, tasks| Box::pin(tx.insert_parts(tasks)))
    }

    fn get(&self, id: TaskId) -> StoreFuture<'_, TaskRecord> {
        self.read(id, |c, id| Box::pin(ops::load_task(c, *id)))
    }

    fn list(&self, filter: ListFilter) -> StoreFuture<'_, Page> {
        self.read(filter, |c, f| Box::pin(ops::list(c, f)))
    }

    fn remove(&self, ids: Vec<TaskId>) -> StoreFuture<'_, Vec<TaskId>> {
        self.write(ids, |tx, ids| Box::pin(ops::remove(tx, ids)))
    }

    fn clean(&self, req: CleanRequest) -> StoreFuture<'_, Vec<TaskId>> {
        self.write(req, |tx, req| {
            Box::pin(async move {
                let ids = ops::clean_candidates(tx.client(), req).await?;
                ops::remove(tx, &ids).await
            })
        })
    }

    fn counts(&self) -> StoreFuture<'_, Vec<(String, TaskState, u64)>> {
        self.read((), |c, ()| Box::pin(ops::counts(c)))
    }
}

impl LifecycleStore for PgStore {
    fn attempts(&self, id: TaskId) -> StoreFuture<'_, Vec<Attempt>> {
        self.read(id, |c, id| Box::pin(ops::attempts(c, *id)))
    }

    fn claim(&self, req: ClaimRequest) -> StoreFuture<'_, Claim> {
        self.write(req, |tx, req| Box::pin(ops::claim(tx, req)))
    }

    fn record_step(&self, step: crate::NewStep) -> StoreFuture<'_, u32> {
        self.write(step, |tx, s| Box::pin(ops::record_step(tx, s)))
    }

    fn steps(
        &self,
        id: TaskId,
        attempt: Option<u32>,
    ) -> StoreFuture<'_, Vec<meanwhile_core::Step>> {
        self.read((id, attempt), |c, &(id, attempt)| {
            Box::pin(ops::steps(c, id, attempt))
        })
    }

    fn set_pid(&self, id: TaskId, attempt: u32, pid: i32) -> StoreFuture<'_, ()> {
        self.write((id, attempt, pid), |tx, &(id, attempt, pid)| {
            Box::pin(flow::set_pid(tx, id, attempt, pid))
        })
    }

    fn renew(&self, node: &str, lease_until: Timestamp) -> StoreFuture<'_, Vec<TaskId>> {
        self.write((node.to_string(), lease_until), |tx, (node, until)| {
            Box::pin(ops::renew(tx, node, *until))
        })
    }

    fn rescue(&self, end: AttemptEnd, now: Timestamp) -> StoreFuture<'_, Option<Finished>> {
        self.write((end, now), |tx, (end, now)| {
            Box::pin(flow::rescue(tx, end, *now))
        })
    }

    fn take_over(&self, to: TakeOver) -> StoreFuture<'_, Option<TaskRecord>> {
        self.write(to, |tx, to| Box::pin(flow::take_over(tx, to)))
    }

    fn finish_attempt(&self, end: AttemptEnd) -> StoreFuture<'_, Option<Finished>> {
        self.write(end, |tx, end| Box::pin(ops::finish_attempt(tx, end)))
    }

    fn submit_and_claim(
        &self,
        tasks: Vec<NewTask>,
        claim: Option<ClaimRequest>,
    ) -> StoreFuture<'_, SubmittedAndClaimed> {
        self.write((tasks, claim), |tx, (tasks, claim)| {
            Box::pin(async move {
                let submitted = tx.insert_parts(tasks).await?;
                // The claim is meanwhile's doing, whoever submitted.
                tx.own_doing_from_here();
                let claim = tx.claim_part(claim.as_ref()).await?;
                Ok(SubmittedAndClaimed { submitted, claim })
            })
        })
    }

    fn settle_and_claim(
        &self,
        ends: Vec<AttemptEnd>,
        claim: Option<ClaimRequest>,
    ) -> StoreFuture<'_, Settled> {
        self.write((ends, claim), |tx, (ends, claim)| {
            Box::pin(async move {
                let mut finished = Vec::with_capacity(ends.len());
                for end in ends {
                    let mark = tx.begin_part().await?;
                    let r = ops::finish_attempt(tx, end).await;
                    finished.push(tx.end_part(mark, r).await?);
                }
                let claim = tx.claim_part(claim.as_ref()).await?;
                Ok(Settled { finished, claim })
            })
        })
    }

    fn release(
        &self,
        id: TaskId,
        attempt: u32,
        now: Timestamp,
    ) -> StoreFuture<'_, Option<TaskRecord>> {
        self.write((id, attempt, now), |tx, &(id, attempt, now)| {
            Box::pin(flow::release(tx, id, attempt, now))
        })
    }

    fn request_stop(
        &self,
        id: TaskId,
        now: Timestamp,
        force: bool,
    ) -> StoreFuture<'_, StopOutcome> {
        self.write((id, now, force), |tx, &(id, now, force)| {
            Box::pin(flow::request_stop(tx, id, now, force))
        })
    }

    fn retry(&self, id: TaskId, now: Timestamp) -> StoreFuture<'_, TaskRecord> {
        self.write((id, now), |tx, &(id, now)| {
            Box::pin(flow::retry(tx, id, now))
        })
    }

    fn set_progress(&self, id: TaskId, progress: Progress) -> StoreFuture<'_, ()> {
        self.write((id, progress), |tx, (id, progress)| {
            Box::pin(flow::set_progress(tx, *id, progress))
        })
    }

    fn set_live(&self, update: crate::LiveUpdate) -> StoreFuture<'_, ()> {
        self.write(update, |tx, update| Box::pin(flow::set_live(tx, update)))
    }

    fn running(
        &self,
        node: Option<&str>,
        expired_before: Option<Timestamp>,
    ) -> StoreFuture<'_, Vec<(TaskRecord, Attempt)>> {
        self.read(
            (node.map(str::to_string), expired_before),
            |c, (node, before)| Box::pin(ops::running(c, node.as_deref(), *before)),
        )
    }

    fn next_wakeup(&self, now: Timestamp) -> StoreFuture<'_, Option<Timestamp>> {
        self.read(now, |c, now| Box::pin(ops::next_wakeup(c, *now)))
    }

    fn last_ends(&self, queue: &str, n: u32) -> StoreFuture<'_, Vec<(TaskId, TaskState)>> {
        self.read((queue.to_string(), n), |c, (queue, n)| {
            Box::pin(ops::last_ends(c, queue, *n))
        })
    }
}

impl QueueStore for PgStore {
    fn queues(&self) -> StoreFuture<'_, Vec<QueueInfo>> {
        self.read((), |c, ()| Box::pin(ops::queues(c)))
    }

    fn set_queue(&self, name: &str, change: QueueUpdate) -> StoreFuture<'_, QueueInfo> {
        self.write((name.to_string(), change), |tx, (name, change)| {
            Box::pin(ops::set_queue(tx, name, change))
        })
    }

    fn remove_queue(&self, name: &str) -> StoreFuture<'_, ()> {
        self.write(name.to_string(), |tx, name| {
            Box::pin(ops::remove_queue(tx, name))
        })
    }
}

impl SessionStore for PgStore {
    fn open_agent_session(
        &self,
        open: crate::OpenAgentSession,
    ) -> StoreFuture<'_, meanwhile_core::AgentSession> {
        self.write(open, |tx, open| Box::pin(ops::open_agent_session(tx, open)))
    }

    fn record_session_step(&self, step: crate::NewAgentSessionStep) -> StoreFuture<'_, u32> {
        self.write(step, |tx, s| Box::pin(ops::record_session_step(tx, s)))
    }

    fn agent_session_steps(&self, name: &str) -> StoreFuture<'_, Vec<meanwhile_core::Step>> {
        self.read(name.to_string(), |c, name| {
            Box::pin(ops::agent_session_steps(c, name))
        })
    }

    fn agent_session(&self, name: &str) -> StoreFuture<'_, meanwhile_core::AgentSession> {
        self.read(name.to_string(), |c, name| {
            Box::pin(ops::agent_session(c, name))
        })
    }

    fn agent_sessions(&self, limit: u32) -> StoreFuture<'_, Vec<meanwhile_core::AgentSession>> {
        self.read(limit, |c, &limit| Box::pin(ops::agent_sessions(c, limit)))
    }

    fn forget_agent_session(&self, name: &str) -> StoreFuture<'_, bool> {
        self.write(name.to_string(), |tx, name| {
            Box::pin(ops::forget_agent_session(tx, name))
        })
    }

    fn drain_notifications(&self, session: &str, limit: u32) -> StoreFuture<'_, Vec<Notification>> {
        self.write((session.to_string(), limit), |tx, (session, limit)| {
            Box::pin(ops::drain_notifications(tx, session, *limit))
        })
    }

    fn peek_notifications(&self, session: &str, limit: u32) -> StoreFuture<'_, Vec<Notification>> {
        self.read((session.to_string(), limit), |c, (session, limit)| {
            Box::pin(ops::peek_notifications(c, session, *limit))
        })
    }

    fn notifications_pending(&self) -> StoreFuture<'_, Vec<(String, u64)>> {
        self.read((), |c, ()| Box::pin(ops::notifications_pending(c)))
    }
}

impl EventStore for PgStore {
    fn events_after(&self, seq: i64, limit: u32) -> StoreFuture<'_, Vec<Event>> {
        self.read((seq, limit), |c, &(seq, limit)| {
            Box::pin(ops::events_after(c, seq, limit))
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.follow.subscribe()
    }

    fn reader_cursor(&self, name: &str) -> StoreFuture<'_, i64> {
        self.write(name.to_string(), |tx, name| {
            Box::pin(ops::reader_cursor(tx, name))
        })
    }

    fn set_reader_cursor(&self, name: &str, seq: i64) -> StoreFuture<'_, ()> {
        self.write((name.to_string(), seq), |tx, (name, seq)| {
            Box::pin(ops::set_reader_cursor(tx, name, *seq))
        })
    }
}

impl AlertStore for PgStore {
    fn fire_alert(&self, alert: NewAlert, now: Timestamp) -> StoreFuture<'_, Option<Alert>> {
        self.write((alert, now), |tx, (alert, now)| {
            Box::pin(flow::fire_alert(tx, alert, *now))
        })
    }

    fn resolve_alert(
        &self,
        kind: AlertKind,
        subject: &str,
        message: &str,
        now: Timestamp,
    ) -> StoreFuture<'_, Option<Alert>> {
        let data = (kind, subject.to_string(), message.to_string(), now);
        self.write(data, |tx, (kind, subject, message, now)| {
            Box::pin(flow::resolve_alert(tx, *kind, subject, message, *now))
        })
    }

    fn ack_alert(
        &self,
        id: i64,
        until: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreFuture<'_, Alert> {
        let by = crate::current_actor().who();
        self.write((id, until, by, now), |tx, (id, until, by, now)| {
            Box::pin(flow::ack_alert(tx, *id, *until, by, *now))
        })
    }

    fn repeat_alerts(
        &self,
        every: Option<std::time::Duration>,
        now: Timestamp,
    ) -> StoreFuture<'_, Vec<Alert>> {
        self.write((every, now), |tx, (every, now)| {
            Box::pin(flow::repeat_alerts(tx, *every, *now))
        })
    }

    fn alerts(&self, all: bool, limit: u32) -> StoreFuture<'_, Vec<Alert>> {
        self.read((all, limit), |c, &(all, limit)| {
            Box::pin(ops::alerts(c, all, limit))
        })
    }
}

impl ScheduleStore for PgStore {
    fn add_schedule(
        &self,
        spec: ScheduleSpec,
        next_fire: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreFuture<'_, ScheduleInfo> {
        self.write((spec, next_fire, now), |tx, (spec, next, now)| {
            Box::pin(ops::add_schedule(tx, spec, *next, *now))
        })
    }

    fn schedules(&self) -> StoreFuture<'_, Vec<ScheduleInfo>> {
        self.read((), |c, ()| Box::pin(ops::schedules(c)))
    }

    fn schedule(&self, name: &str) -> StoreFuture<'_, ScheduleInfo> {
        self.read(name.to_string(), |c, name| Box::pin(ops::schedule(c, name)))
    }

    fn remove_schedule(&self, name: &str) -> StoreFuture<'_, ()> {
        self.write(name.to_string(), |tx, name| {
            Box::pin(ops::remove_schedule(tx, name))
        })
    }

    fn pause_schedule(
        &self,
        name: &str,
        paused: bool,
        next_fire: Option<Timestamp>,
    ) -> StoreFuture<'_, ScheduleInfo> {
        self.write(
            (name.to_string(), paused, next_fire),
            |tx, (name, paused, next)| Box::pin(ops::pause_schedule(tx, name, *paused, *next)),
        )
    }

    fn fire_schedule(&self, firing: ScheduleFiring) -> StoreFuture<'_, Option<Fired>> {
        self.write(firing, |tx, f| Box::pin(ops::fire_schedule(tx, f)))
    }
}

impl BudgetStore for PgStore {
    fn set_budget(
        &self,
        queue: &str,
        spec: BudgetSpec,
        now: Timestamp,
    ) -> StoreFuture<'_, BudgetInfo> {
        self.write((queue.to_string(), spec, now), |tx, (queue, spec, now)| {
            Box::pin(ops::set_budget(tx, queue, spec, *now))
        })
    }

    fn budgets(&self) -> StoreFuture<'_, Vec<BudgetInfo>> {
        self.read((), |c, ()| Box::pin(ops::budgets(c)))
    }

    fn budget(&self, queue: &str) -> StoreFuture<'_, BudgetInfo> {
        self.read(queue.to_string(), |c, queue| {
            Box::pin(ops::budget(c, queue))
        })
    }

    fn remove_budget(&self, queue: &str, now: Timestamp) -> StoreFuture<'_, ()> {
        self.write((queue.to_string(), now), |tx, (queue, now)| {
            Box::pin(ops::remove_budget(tx, queue, *now))
        })
    }

    fn charge_usage(
        &self,
        task: TaskId,
        tokens: u64,
        cost_usd: f64,
        calls: u32,
        now: Timestamp,
    ) -> StoreFuture<'_, Charged> {
        self.write(
            (task, tokens, cost_usd, calls, now),
            |tx, &(task, tokens, cost_usd, calls, now)| {
                Box::pin(ops::charge_usage(tx, task, tokens, cost_usd, calls, now))
            },
        )
    }

    fn budget_gate(&self, queue: &str, now: Timestamp) -> StoreFuture<'_, Option<BudgetInfo>> {
        self.read((queue.to_string(), now), |c, (queue, now)| {
            Box::pin(ops::budget_gate(c, queue, *now))
        })
    }

    fn roll_budget(&self, queue: &str, now: Timestamp) -> StoreFuture<'_, Option<BudgetInfo>> {
        self.write((queue.to_string(), now), |tx, (queue, now)| {
            Box::pin(ops::roll_budget(tx, queue, *now))
        })
    }
}

impl AuditStore for PgStore {
    fn audit(&self, filter: AuditFilter) -> StoreFuture<'_, AuditPage> {
        self.read(filter, |c, f| Box::pin(audit::list(c, f)))
    }

    fn verify_audit(&self, key: AuditKey) -> StoreFuture<'_, AuditVerdict> {
        // One snapshot for the checkpoint, the records and the highest number, so
        // that appends meanwhile do not look like a broken chain.
        self.write(key, |tx, key| Box::pin(audit::verify(tx, key)))
    }

    fn prune_audit(&self, before: Timestamp, key: AuditKey) -> StoreFuture<'_, u64> {
        self.write((before, key), |tx, (before, key)| {
            Box::pin(audit::prune(tx, *before, key))
        })
    }
}

impl TokenStore for PgStore {
    fn tokens(&self) -> StoreFuture<'_, Vec<StoredToken>> {
        self.read((), |c, ()| Box::pin(audit::tokens(c)))
    }

    fn add_token(&self, name: &str, hash: &str, now: Timestamp) -> StoreFuture<'_, TokenInfo> {
        self.write(
            (name.to_string(), hash.to_string(), now),
            |tx, (name, hash, now)| Box::pin(audit::add_token(tx, name, hash, *now)),
        )
    }

    fn remove_token(&self, name: &str) -> StoreFuture<'_, ()> {
        self.write(name.to_string(), |tx, name| {
            Box::pin(audit::remove_token(tx, name))
        })
    }
}

impl NodeStore for PgStore {
    fn beat(&self, beat: NodeBeat) -> StoreFuture<'_, ()> {
        self.write(beat, |tx, beat| Box::pin(ops::beat(tx, beat)))
    }

    fn node_stopped(&self, name: &str, now: Timestamp) -> StoreFuture<'_, ()> {
        self.write((name.to_string(), now), |tx, (name, now)| {
            Box::pin(ops::node_stopped(tx, name, *now))
        })
    }

    fn nodes(&self) -> StoreFuture<'_, Vec<NodeRow>> {
        self.read((), |c, ()| Box::pin(ops::nodes(c)))
    }

    fn remove_node(&self, name: &str) -> StoreFuture<'_, ()> {
        self.write(name.to_string(), |tx, name| {
            Box::pin(ops::remove_node(tx, name))
        })
    }
}

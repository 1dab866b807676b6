//! A pooled connection that prepares each statement once.
//!
//! The driver's `query(&str, ...)` prepares an unnamed statement on every call: one
//! round trip more per statement, and a task's way through the store runs a few dozen
//! statements. This wrapper keeps each connection's prepared statements by their SQL
//! text, with the driver's method names, so the store's code reads the same. Its
//! cache is bounded: SQL built with values inlined (a listing's `LIMIT`) stops being
//! cached once the cache is full, and runs as before.

use std::collections::HashMap;
use std::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row, Statement};

/// Statements one connection keeps prepared at most.
const MAX_STATEMENTS: usize = 512;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A connection to the database with its prepared statements.
pub(crate) struct Client {
    inner: tokio_postgres::Client,
    statements: Mutex<HashMap<String, Statement>>,
}

impl Client {
    pub(crate) fn new(inner: tokio_postgres::Client) -> Client {
        Client {
            inner,
            statements: Mutex::new(HashMap::new()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Statement>> {
        // A map of handles: whatever panicked while holding it left it usable.
        self.statements.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The prepared statement of `sql`, prepared now if it is not yet; `None` when
    /// the cache is full and `sql` is not in it.
    async fn statement(&self, sql: &str) -> Result<Option<Statement>, Error> {
        if let Some(s) = self.cache().get(sql) {
            return Ok(Some(s.clone()));
        }
        if self.cache().len() >= MAX_STATEMENTS {
            return Ok(None);
        }
        let s = self.inner.prepare(sql).await?;
        self.cache().insert(sql.to_string(), s.clone());
        Ok(Some(s))
    }

    /// The prepared statement of `sql`, cached when there is room. Statements
    /// prepared beforehand can be pipelined: sent one after another, in the order
    /// their futures are first polled, without waiting for the answers between.
    pub(crate) async fn prepared(&self, sql: &str) -> Result<Statement, Error> {
        match self.statement(sql).await? {
            Some(s) => Ok(s),
            None => self.inner.prepare(sql).await,
        }
    }

    /// The driver's client, to run [`Client::prepared`] statements pipelined.
    pub(crate) fn driver(&self) -> &tokio_postgres::Client {
        &self.inner
    }

    pub(crate) async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
        match self.statement(sql).await? {
            Some(s) => self.inner.query(&s, params).await,
            None => self.inner.query(sql, params).await,
        }
    }

    pub(crate) async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, Error> {
        match self.statement(sql).await? {
            Some(s) => self.inner.query_one(&s, params).await,
            None => self.inner.query_one(sql, params).await,
        }
    }

    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, Error> {
        match self.statement(sql).await? {
            Some(s) => self.inner.query_opt(&s, params).await,
            None => self.inner.query_opt(sql, params).await,
        }
    }

    pub(crate) async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
        match self.statement(sql).await? {
            Some(s) => self.inner.execute(&s, params).await,
            None => self.inner.execute(sql, params).await,
        }
    }

    /// Runs statements without parameters, unprepared, and answers what they
    /// answered, as text.
    #[cfg(feature = "plans")]
    pub(crate) async fn simple_query(
        &self,
        sql: &str,
    ) -> Result<Vec<tokio_postgres::SimpleQueryMessage>, Error> {
        self.inner.simple_query(sql).await
    }

    /// Runs statements without parameters, unprepared (`BEGIN`, `COMMIT`, DDL).
    pub(crate) async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        self.inner.batch_execute(sql).await
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }
}

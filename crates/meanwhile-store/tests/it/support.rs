//! The suite's fixtures: a store of either kind on a database of the test's own, and
//! the macro that runs one test body against both.

use meanwhile_core::{AttemptOutcome, TaskId, TaskKind, TaskSpec, Timestamp};
use meanwhile_store::{AttemptEnd, ClaimRequest, NewTask, PgStore, SqliteStore, Store, StoreError};
use meanwhile_testpg::TestDb;
use std::path::PathBuf;

/// Where a fixture's store keeps its data.
enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(Box<TestDb>),
}

/// A store on a fresh database, which the test may reopen or edit by hand.
pub(crate) struct Fixture {
    pub(crate) store: Box<dyn Store>,
    db: Db,
}

impl Fixture {
    pub(crate) async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::Sqlite(dir);
        let store = open(&db).await.unwrap();
        Fixture { store, db }
    }

    pub(crate) async fn postgres() -> Fixture {
        let db = Db::Postgres(Box::new(TestDb::new().await));
        let store = open(&db).await.unwrap();
        Fixture { store, db }
    }

    /// A fixture of the same kind on another fresh database.
    pub(crate) async fn fresh(&self) -> Fixture {
        match self.db {
            Db::Sqlite(_) => Fixture::sqlite().await,
            Db::Postgres(_) => Fixture::postgres().await,
        }
    }

    /// Another store on the same database, as a second node (PostgreSQL) or a
    /// restarted one would open it.
    pub(crate) async fn open_another(&self) -> Result<Box<dyn Store>, StoreError> {
        open(&self.db).await
    }

    /// Closes the store and opens the database again, as a restart does.
    pub(crate) async fn reopen(&mut self) {
        self.store = open(&self.db).await.unwrap();
    }

    /// A connection of the test's own to the fixture's PostgreSQL database.
    pub(crate) async fn pg_client(&self) -> tokio_postgres::Client {
        let Db::Postgres(db) = &self.db else {
            panic!("pg_client asks a PostgreSQL fixture");
        };
        let (client, connection) = db.config().connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }

    /// The connections to the fixture's PostgreSQL database, besides the one asking.
    pub(crate) async fn pg_connections(&self) -> i64 {
        let client = self.pg_client().await;
        let sql = "SELECT count(*) FROM pg_stat_activity \
                   WHERE datname = current_database() AND pid <> pg_backend_pid()";
        client.query_one(sql, &[]).await.unwrap().get(0)
    }

    /// Runs SQL on the database directly, as someone editing it by hand would.
    pub(crate) async fn edit(&self, sql: &str) {
        match &self.db {
            Db::Sqlite(dir) => rusqlite::Connection::open(sqlite_path(dir))
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            Db::Postgres(db) => db.execute(sql).await,
        }
    }
}

fn sqlite_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("meanwhile.db")
}

async fn open(db: &Db) -> Result<Box<dyn Store>, StoreError> {
    Ok(match db {
        Db::Sqlite(dir) => Box::new(SqliteStore::open(&sqlite_path(dir))?),
        Db::Postgres(db) => Box::new(PgStore::connect(&db.url()).await?),
    })
}

/// One test body, run against each store: `name::sqlite` and `name::postgres`.
macro_rules! both {
    ($(#[$meta:meta])* async fn $name:ident($f:ident: Fixture) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::support::Fixture;

            async fn body($f: Fixture) $body

            #[tokio::test]
            async fn sqlite() {
                body(Fixture::sqlite().await).await
            }

            #[tokio::test]
            async fn postgres() {
                body(Fixture::postgres().await).await
            }
        }
    };
}

pub(crate) const NOW: Timestamp = Timestamp(1_000_000);

pub(crate) async fn submit(store: &dyn Store, spec: TaskSpec) -> TaskId {
    let r = store
        .submit(vec![NewTask::new(spec.validate().unwrap(), NOW)])
        .await
        .unwrap();
    r.into_iter().next().unwrap().unwrap().id()
}

pub(crate) fn claim_req(limit: u32) -> ClaimRequest {
    ClaimRequest {
        node: "n1".into(),
        now: NOW,
        lease_until: Timestamp(NOW.0 + 60_000),
        kinds: vec![TaskKind::Shell],
        limit,
        share_since: None,
    }
}

pub(crate) fn end(id: TaskId, attempt: u32, outcome: AttemptOutcome) -> AttemptEnd {
    AttemptEnd {
        id,
        attempt,
        outcome,
        ended_at: Timestamp(NOW.0 + 500),
        exit_code: match outcome {
            AttemptOutcome::Exited { code } => Some(code),
            _ => None,
        },
        signal: None,
        reason: None,
        peak_rss_kb: None,
        cpu_ms: None,
        pid: None,
        retry_at: Timestamp(NOW.0 + 1000),
        tail: "last line\n".into(),
        output_bytes: 10,
        result: None,
        node: None,
    }
}

pub(crate) async fn claimed_ids(
    store: &dyn Store,
    req: ClaimRequest,
) -> (Vec<TaskId>, Option<Timestamp>) {
    let c = store.claim(req).await.unwrap();
    (c.tasks.iter().map(|c| c.task.id).collect(), c.next_wakeup)
}

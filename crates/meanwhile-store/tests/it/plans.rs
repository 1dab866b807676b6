//! Which index each list, filter and claim query of the store uses, on each store:
//! the plans SQLite (`EXPLAIN QUERY PLAN`) and PostgreSQL (`EXPLAIN`) make of the
//! very SQL the store runs (`planned_queries`, feature `plans`), checked against
//! the table below, and the indexes of each schema that no query uses, named.
//!
//! A plan is summed up in a few words, the same for both stores:
//! - `INDEX`: a search through the index (a range of it);
//! - `INDEX (all)`: a walk of the whole index: for its order, for the rows its own
//!   `WHERE` keeps, or with a condition on a later column only;
//! - `scan TABLE`: a walk of the whole table (in SQLite's rowid order or through
//!   PostgreSQL's primary key, for an `ORDER BY id`, or a sequential scan);
//! - `sort`: the rows are sorted after they are read (`ORDER BY` alone: a grouping
//!   is left out).
//!
//! A search by primary key (a task by its id, a queue by its name) is left out:
//! every table has its key, and the question here is which other indexes earn
//! their cost.
//!
//! PostgreSQL is asked for the generic plan (the store prepares each statement once
//! and runs it again and again) with sequential scans off, so that a test's small
//! tables still show the index the planner can use; SQLite plans without
//! statistics (the store never runs `ANALYZE`), so its plans are those of a home.

use meanwhile_store::plans::PlannedQuery;
use meanwhile_store::{PgStore, SqliteStore};
use std::collections::{BTreeMap, BTreeSet};

/// Each query by name, with what its plan comes to on SQLite and on PostgreSQL:
/// the words of the module's comment, sorted and joined by commas; empty when the
/// query reads by primary key only; [`NONE`] where the store has no such query.
#[rustfmt::skip]
const EXPECTED: &[(&str, &str, &str)] = &[
    // Newest first: the table in reverse id order, up to the page's end.
    ("list", "scan tasks", "scan tasks"),
    ("list by state", "tasks_state", "sort, tasks_state"),
    ("list by states", "sort, tasks_state", "sort, tasks_state"),
    ("list by queue", "tasks_queue", "tasks_queue"),
    ("list by queue and state", "tasks_queue", "tasks_queue"),
    ("list by session", "tasks_session", "tasks_session"),
    ("list by name", "tasks_name", "tasks_name"),
    // A substring of the name: no index can help; bounded by the page.
    ("list by text", "scan tasks", "scan tasks"),
    ("list by label", "", "sort"),
    ("list, next page", "", "sort"),
    ("submit: task of a key", "tasks_idempotency", "tasks_idempotency"),
    ("end: pending dependents", "deps_reverse", "deps_reverse, tasks_state"),
    // PostgreSQL deletes by `task_id`, the second column of the key: all of it.
    ("remove: labels", "", "scan task_labels"),
    ("clean: by age", "tasks_finished", "tasks_finished"),
    ("clean: by count", "tasks_finished", "sort, tasks_finished (all)"),
    // A handful of rows.
    ("claim: unpaused queues", "scan queues", "scan queues"),
    // SQLite: only the running rows, through `tasks_state`.
    ("claim: running per queue", "tasks_state", "tasks_running (all)"),
    // A handful of rows.
    ("claim: sharing nodes", NONE, "scan nodes"),
    // `node` is `tasks_running`'s second column: all of the running.
    ("claim: running of the node", NONE, "tasks_running (all)"),
    ("claim: pick", "tasks_pending", "tasks_pending"),
    // Only the running, whichever their queue: not the queue's whole history.
    ("claim: running per key", "tasks_state", "sort, tasks_running"),
    ("claim: pick by key", "tasks_pending", "tasks_pending"),
    ("claim: forget starts", "", ""),
    ("claim: starts counted", "", ""),
    ("claim: starts", "", "sort"),
    ("next wakeup", "tasks_pending_time", "tasks_pending_time"),
    ("renew", "tasks_state", "tasks_running (all)"),
    ("steps of an attempt", "steps_key", "sort"),
    // PostgreSQL: through the primary key, sorted after (a session's steps).
    ("steps of a session", "agent_session_steps_key", "sort"),
    ("agent sessions", "agent_sessions_updated (all)", "agent_sessions_updated (all)"),
    ("idle agent sessions", "agent_sessions_updated", "agent_sessions_updated"),
    ("running of a node", "tasks_state", "tasks_state"),
    ("running, lease expired", "tasks_state", "tasks_state"),
    ("last ends of a queue", "sort, tasks_queue", "sort, tasks_queue"),
    ("nodes", "scan nodes, tasks_state", "scan nodes, tasks_running (all)"),
    // The small tables are read whole.
    ("queues", "scan queues", "scan queues"),
    ("counts", "scan counts", "scan counts"),
    ("budgets", "scan budgets", "scan budgets"),
    ("schedules", "scan schedules", "scan schedules, sort, tasks_state (all)"),
    ("alerts", "scan alerts", "scan alerts"),
    ("alerts: firing", "scan alerts", "alerts_firing (all), sort"),
    ("alerts: resolve", "alerts_firing", "alerts_firing"),
    ("alerts: remind", "alerts_firing (all)", "alerts_firing (all)"),
    ("alerts: budget alarms", "alerts_firing", "alerts_firing"),
    ("events after", "", ""),
    ("notifications after", "notifications_session", "notifications_session"),
    ("notifications pending", "notifications_session (all)", "notifications_session (all), scan sessions"),
    ("tokens", "scan tokens", "scan tokens"),
    // The oldest events in `seq` order, a `LIMIT` of them.
    ("prune: events by age", "scan events", "scan events"),
    ("prune: events by count", "", ""),
    ("prune: events of removed", "", ""),
    ("prune: notices of removed", "", ""),
    ("prune: sessions", "notifications_session, scan sessions", "notifications_session (all), scan sessions"),
    // Oldest first, up to a slice: alerts are few beside tasks, as the listing says.
    ("prune: resolved alerts", "scan alerts", "scan alerts"),
    ("audit", "", "sort"),
    ("audit, newest first", "", "sort"),
    ("audit of a task", "audit_task", "audit_task"),
    ("audit of a task, newest first", "audit_task", "audit_task"),
];

/// In [`EXPECTED`]: a query this store does not have.
const NONE: &str = "-";

/// The indexes of each schema that no query above uses: candidates to drop. An
/// index that backs a constraint (`UNIQUE`, a primary key) is not counted.
const UNUSED_SQLITE: &[&str] = &[];
const UNUSED_POSTGRES: &[&str] = &[];

/// The few words a plan comes to (see the module's comment), sorted.
fn sum_up_sqlite(details: &[String]) -> Vec<String> {
    let mut out = BTreeSet::new();
    for d in details {
        let words: Vec<&str> = d.split_whitespace().collect();
        // The word after `INDEX`, in `... USING [COVERING] INDEX name (...)`.
        let index = words
            .iter()
            .position(|w| *w == "INDEX")
            .and_then(|at| words.get(at + 1));
        match (words.as_slice(), index) {
            (["SEARCH", ..], Some(index)) if !index.starts_with("sqlite_autoindex_") => {
                out.insert(index.to_string());
            }
            (["SCAN", ..], Some(index)) => {
                out.insert(match autoindex_table(index) {
                    Some(table) => format!("scan {table}"),
                    None => format!("{index} (all)"),
                });
            }
            (["SCAN", table], None) => {
                out.insert(format!("scan {table}"));
            }
            (["USE", "TEMP", "B-TREE", "FOR", rest @ ..], _) if rest.contains(&"ORDER") => {
                out.insert("sort".to_string());
            }
            _ => {}
        }
    }
    out.into_iter().collect()
}

/// The table of an index SQLite made for a key (`sqlite_autoindex_nodes_1`).
fn autoindex_table(index: &str) -> Option<&str> {
    let rest = index.strip_prefix("sqlite_autoindex_")?;
    Some(rest.rsplit_once('_').map_or(rest, |(table, _)| table))
}

/// Each index of a PostgreSQL schema, with its table and first column.
type Indexes = BTreeMap<String, (String, String)>;

/// The few words a PostgreSQL plan (`EXPLAIN (FORMAT JSON)`) comes to, sorted.
/// `indexes` gives the table and first column of each index: a condition on a
/// later column alone still walks the whole index.
fn sum_up_postgres(plan: &serde_json::Value, indexes: &Indexes) -> Vec<String> {
    fn walk(node: &serde_json::Value, indexes: &Indexes, out: &mut BTreeSet<String>) {
        let text = |key: &str| node.get(key).and_then(|v| v.as_str()).unwrap_or("");
        let index = text("Index Name");
        // A bitmap index scan names no table: its index does.
        let (table, searched) = match indexes.get(index) {
            Some((table, column)) => (
                table.as_str(),
                text("Index Cond").contains(&format!("({column} ")),
            ),
            None => (text("Relation Name"), false),
        };
        match text("Node Type") {
            "Seq Scan" => {
                out.insert(format!("scan {table}"));
            }
            "Index Scan" | "Index Only Scan" | "Bitmap Index Scan" => {
                let key = index.ends_with("_pkey");
                match (key, searched) {
                    (true, true) => {}
                    (true, false) => {
                        out.insert(format!("scan {table}"));
                    }
                    (false, true) => {
                        out.insert(index.to_string());
                    }
                    (false, false) => {
                        out.insert(format!("{index} (all)"));
                    }
                }
            }
            "Sort" | "Incremental Sort" => {
                out.insert("sort".to_string());
            }
            _ => {}
        }
        for child in node
            .get("Plans")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
        {
            walk(child, indexes, out);
        }
    }
    let mut out = BTreeSet::new();
    for root in plan.as_array().into_iter().flatten() {
        if let Some(p) = root.get("Plan") {
            walk(p, indexes, &mut out);
        }
    }
    out.into_iter().collect()
}

/// Checks each query's summed-up plan against [`EXPECTED`] (the column `which`
/// picks), every mismatch at once; answers which queries use each index.
fn check(
    plans: &[(PlannedQuery, Vec<String>, String)],
    which: fn(&(&str, &'static str, &'static str)) -> &'static str,
) -> BTreeMap<String, Vec<&'static str>> {
    let mut wrong = Vec::new();
    let mut uses: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    for (q, words, raw) in plans {
        let got = words.join(", ");
        match EXPECTED.iter().find(|e| e.0 == q.name).map(which) {
            Some(expected) if expected == got => {}
            expected => wrong.push(format!(
                "{:?}: expected {expected:?}, got {got:?}\n  {}\n  plan: {raw}",
                q.name,
                q.sql.split_whitespace().collect::<Vec<_>>().join(" ")
            )),
        }
        for w in words {
            let index = w.strip_suffix(" (all)").unwrap_or(w);
            if !index.starts_with("scan ") && index != "sort" {
                uses.entry(index.to_string()).or_default().push(q.name);
            }
        }
    }
    for e in EXPECTED {
        if which(e) != NONE && !plans.iter().any(|(q, ..)| q.name == e.0) {
            wrong.push(format!(
                "{:?} is expected, but the store plans no such query",
                e.0
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} plans differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    uses
}

/// Checks that the indexes no query uses are exactly `unused`, and says which
/// query uses each of the others.
fn check_unused(schema: BTreeSet<String>, uses: &BTreeMap<String, Vec<&str>>, unused: &[&str]) {
    for (index, queries) in uses {
        eprintln!("{index}: {}", queries.join("; "));
    }
    let idle: Vec<&str> = schema
        .iter()
        .map(String::as_str)
        .filter(|i| !uses.contains_key(*i))
        .collect();
    eprintln!("unused: {}", idle.join(", "));
    assert_eq!(idle, unused, "the indexes no query uses");
}

#[tokio::test]
async fn sqlite_queries_use_the_indexes_expected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meanwhile.db");
    let store = SqliteStore::open(&path).unwrap();
    let mut plans = Vec::new();
    for q in store.planned_queries() {
        let details = store.explain(&q.sql, &q.params).await.unwrap();
        plans.push((q, sum_up_sqlite(&details), details.join(" | ")));
    }
    let uses = check(&plans, |e| e.1);
    let schema: BTreeSet<String> = rusqlite::Connection::open(&path)
        .unwrap()
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    check_unused(schema, &uses, UNUSED_SQLITE);
}

#[tokio::test]
async fn postgres_queries_use_the_indexes_expected() {
    let db = meanwhile_testpg::TestDb::new().await;
    let store = PgStore::connect(&db.url()).await.unwrap();
    let (client, connection) = db.config().connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let indexes: Indexes = client
        .query(
            "SELECT c.relname::TEXT, t.relname::TEXT, a.attname::TEXT FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_class t ON t.oid = i.indrelid
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let mut plans = Vec::new();
    for q in store.planned_queries() {
        let plan = store.explain(&q.sql, &q.params).await.unwrap();
        plans.push((q, sum_up_postgres(&plan, &indexes), plan.to_string()));
    }
    let uses = check(&plans, |e| e.2);
    // The indexes made by CREATE INDEX: not those behind a constraint.
    let schema: BTreeSet<String> = client
        .query(
            "SELECT c.relname::TEXT FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public'
               AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    check_unused(schema, &uses, UNUSED_POSTGRES);
}

//! The PostgreSQL store's list, filter and claim queries with sample parameters (see
//! `crate::plans`), and the plan PostgreSQL makes of one.
//!
//! The store prepares each statement once per connection and runs it again and
//! again, so what serves in the long run is the generic plan, made without the
//! parameters' values: that is the one asked for. Sequential scans are turned off,
//! so that tables with few rows (a test's) show the index the planner can use, as
//! it would on a large table.

use super::{Client, audit, ops, retention};
use crate::StoreError;
use crate::decode::AuditQuery;
use crate::plans::{KINDS, NODE, NOW, Param, PlannedQuery, list_filters};
use meanwhile_core::{AuditFilter, TaskId};

/// Every query of the store that lists or filters, by name; `icu` chooses the text
/// filter of a server with ICU.
pub(crate) fn queries(icu: bool) -> Vec<PlannedQuery> {
    let q = PlannedQuery::new;
    let t = |s: &str| Param::Text(s.to_string());
    let i = Param::Int;
    let mut out: Vec<PlannedQuery> = list_filters()
        .into_iter()
        .filter_map(|(name, f)| {
            let (sql, args) = ops::list_sql(&f, icu)?;
            Some(q(name, sql, args.into_iter().map(param).collect()))
        })
        .collect();
    let runnable = ops::runnable(NODE);
    let kinds = Param::Texts(KINDS.iter().map(|k| k.as_str().to_string()).collect());
    let pick = vec![t("default"), i(NOW.0), kinds.clone(), i(8)];
    let window = NOW.0 - 60_000;
    out.extend(crate::plans::shared_queries!());
    out.extend([
        q("remove: labels", ops::REMOVE_LABELS.into(), vec![i(7)]),
        q(
            "claim: sharing nodes",
            ops::SHARING_NODES.into(),
            vec![t(NODE), i(window)],
        ),
        q(
            "claim: running of the node",
            ops::RUNNING_OF_NODE_PER_QUEUE.into(),
            vec![t(NODE)],
        ),
        q("claim: pick", ops::pick_sql(&runnable), pick),
        q(
            "claim: pick by key",
            ops::pick_by_key_sql(&runnable),
            vec![t("build"), i(NOW.0), kinds],
        ),
        q(
            "alerts: resolve",
            crate::sql::ops::alerts::RESOLVE.postgres.into(),
            vec![t("stalled"), t("task:7"), i(NOW.0), t("ok")],
        ),
        q(
            "alerts: remind",
            crate::sql::ops::alerts::REPEAT.postgres.into(),
            vec![i(NOW.0), i(3_600_000)],
        ),
        q(
            "prune: events by age",
            retention::EVENTS_BY_AGE.into(),
            vec![i(NOW.0), i(10_000)],
        ),
        q(
            "prune: events by count",
            retention::EVENTS_BY_COUNT.into(),
            vec![i(100_000), i(10_000)],
        ),
    ]);
    for (name, task, newest_first) in [
        ("audit", None, false),
        ("audit, newest first", None, true),
        ("audit of a task", Some(TaskId(7)), false),
        ("audit of a task, newest first", Some(TaskId(7)), true),
    ] {
        let a = AuditQuery::new(&AuditFilter {
            task,
            newest_first,
            ..AuditFilter::default()
        });
        let params = match task {
            Some(t) => vec![i(t.0), i(a.after), i(a.since), i(a.fetch), i(a.before)],
            None => vec![i(a.after), i(a.since), i(a.fetch), i(a.before)],
        };
        out.push(q(name, audit::page_sql(task.is_some(), a.order), params));
    }
    out
}

fn param(a: ops::ListArg) -> Param {
    match a {
        ops::ListArg::Texts(v) => Param::Texts(v),
        ops::ListArg::Text(s) => Param::Text(s),
        ops::ListArg::Int(n) => Param::Int(n),
    }
}

/// `p` written as an SQL literal.
fn literal(p: &Param) -> String {
    let text = |s: &str| format!("'{}'", s.replace('\'', "''"));
    match p {
        Param::Null => "NULL".into(),
        Param::Int(n) => n.to_string(),
        Param::Text(s) => text(s),
        Param::Texts(v) => {
            let items: Vec<String> = v.iter().map(|s| text(s)).collect();
            format!("ARRAY[{}]::TEXT[]", items.join(", "))
        }
    }
}

/// PostgreSQL's generic plan of `sql` with sequential scans off, as `EXPLAIN (FORMAT
/// JSON)` gives it. In a transaction that is rolled back, so that no setting
/// outlives it; the connection is given back only when all of it went through.
pub(crate) async fn explain(
    c: &Client,
    sql: &str,
    params: &[Param],
) -> Result<serde_json::Value, StoreError> {
    let args: Vec<String> = params.iter().map(literal).collect();
    let execute = if args.is_empty() {
        "EXECUTE meanwhile_plan".to_string()
    } else {
        format!("EXECUTE meanwhile_plan({})", args.join(", "))
    };
    let script = format!(
        "BEGIN;
         SET LOCAL enable_seqscan = off;
         SET LOCAL plan_cache_mode = force_generic_plan;
         PREPARE meanwhile_plan AS {sql};
         EXPLAIN (FORMAT JSON) {execute};
         DEALLOCATE meanwhile_plan;
         ROLLBACK;"
    );
    let plan = c
        .simple_query(&script)
        .await?
        .into_iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .ok_or_else(|| StoreError::Corrupt("EXPLAIN answered no plan".into()))?;
    serde_json::from_str(&plan).map_err(|e| StoreError::Corrupt(format!("a plan: {e}")))
}

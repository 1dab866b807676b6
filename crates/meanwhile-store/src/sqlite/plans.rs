//! The SQLite store's list, filter and claim queries with sample parameters (see
//! `crate::plans`), and the plan SQLite makes of one on a connection of the store's.

use super::{audit, ops, retention};
use crate::StoreError;
use crate::decode::AuditQuery;
use crate::plans::{KINDS, NODE, NOW, Param, PlannedQuery, list_filters};
use meanwhile_core::{AuditFilter, TaskId};
use rusqlite::Connection;
use rusqlite::types::Value;

/// Every query of the store that lists or filters, by name.
pub(crate) fn queries() -> Vec<PlannedQuery> {
    let q = PlannedQuery::new;
    let t = |s: &str| Param::Text(s.to_string());
    let i = Param::Int;
    let mut out: Vec<PlannedQuery> = list_filters()
        .into_iter()
        .map(|(name, f)| {
            let (sql, args) = ops::list_sql(&f);
            q(name, sql, args.into_iter().map(param).collect())
        })
        .collect();
    let runnable = ops::runnable(KINDS, NODE);
    out.extend(crate::plans::shared_queries!());
    out.extend([
        q(
            "remove: labels",
            ops::REMOVE_LABEL.into(),
            vec![t("ci"), i(7)],
        ),
        q(
            "claim: pick",
            ops::pick_sql(&runnable),
            vec![t("default"), i(NOW.0), i(8)],
        ),
        q(
            "claim: pick by key",
            ops::pick_by_key_sql(&runnable),
            vec![t("build"), i(NOW.0)],
        ),
        q(
            "alerts: resolve",
            ops::RESOLVE.into(),
            vec![t("stalled"), t("task:7"), i(NOW.0), t("ok")],
        ),
        q(
            "alerts: remind",
            ops::REPEAT.into(),
            vec![i(NOW.0), i(3_600_000)],
        ),
        q(
            "prune: events by age",
            retention::EVENTS_BY_AGE.into(),
            vec![i(NOW.0), i(2_000)],
        ),
        q(
            "prune: events by count",
            retention::EVENTS_BY_COUNT.into(),
            vec![i(100_000), i(2_000)],
        ),
    ]);
    for (name, task, newest_first) in audit_pages() {
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

/// The pages of the audit trail: all of it or a task's, oldest or newest first.
fn audit_pages() -> [(&'static str, Option<TaskId>, bool); 4] {
    [
        ("audit", None, false),
        ("audit, newest first", None, true),
        ("audit of a task", Some(TaskId(7)), false),
        ("audit of a task, newest first", Some(TaskId(7)), true),
    ]
}

fn param(v: Value) -> Param {
    match v {
        Value::Integer(n) => Param::Int(n),
        Value::Text(s) => Param::Text(s),
        // A listing's parameters are texts and integers only.
        _ => Param::Null,
    }
}

/// The detail of each step of SQLite's plan of `sql` with `params`.
pub(crate) fn explain(
    conn: &Connection,
    sql: &str,
    params: &[Param],
) -> Result<Vec<String>, StoreError> {
    let values = params
        .iter()
        .map(|p| match p {
            Param::Null => Ok(Value::Null),
            Param::Int(n) => Ok(Value::Integer(*n)),
            Param::Text(s) => Ok(Value::Text(s.clone())),
            Param::Texts(_) => Err(StoreError::Invalid {
                field: "params",
                message: "SQLite takes no arrays".into(),
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| r.get(3))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

//! Nodes: each runtime's heartbeat, and the list of them with their running tasks.

use super::*;
use crate::StoreError;
use crate::decode::NodeColumns;
use meanwhile_core::{NodeBeat, NodeRow, Timestamp};
use rusqlite::{Connection, params};

pub(crate) fn beat(conn: &Connection, b: &NodeBeat) -> Result<()> {
    conn.execute(
        "INSERT INTO nodes (name, address, version, started_at, heartbeat_at, stopped_at)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL)
         ON CONFLICT (name) DO UPDATE SET address = excluded.address,
             version = excluded.version, started_at = excluded.started_at,
             heartbeat_at = excluded.heartbeat_at, stopped_at = NULL",
        params![b.name, b.address, b.version, b.started_at.0, b.now.0],
    )?;
    Ok(())
}

pub(crate) fn node_stopped(conn: &Connection, name: &str, now: Timestamp) -> Result<()> {
    conn.execute(
        "UPDATE nodes SET stopped_at = ?2, heartbeat_at = ?2 WHERE name = ?1",
        params![name, now.0],
    )?;
    Ok(())
}

pub(crate) const NODES: &str = crate::sql::ops::nodes::NODES.sqlite;

pub(crate) fn nodes(conn: &Connection) -> Result<Vec<NodeRow>> {
    let mut stmt = conn.prepare_cached(NODES)?;
    let rows = stmt.query_map([], |r| Ok(NodeColumns::read(r).map(NodeColumns::decode)))?;
    rows.map(|r| r?).collect()
}

pub(crate) fn remove_node(conn: &Connection, name: &str) -> Result<()> {
    if conn.execute("DELETE FROM nodes WHERE name = ?1", [name])? == 0 {
        return Err(StoreError::UnknownNode(name.to_string()));
    }
    Ok(())
}

//! Nodes: each runtime's heartbeat, and the list of them with their running tasks.

use super::*;
use crate::StoreError;
use crate::decode::NodeColumns;
use crate::postgres::Client;
use meanwhile_core::{NodeBeat, NodeRow, Timestamp};

pub(crate) async fn beat(tx: &mut Tx, b: &NodeBeat) -> Result<()> {
    exec(
        tx,
        "INSERT INTO nodes (name, address, version, started_at, heartbeat_at, stopped_at)
         VALUES ($1, $2, $3, $4, $5, NULL)
         ON CONFLICT (name) DO UPDATE SET address = excluded.address,
             version = excluded.version, started_at = excluded.started_at,
             heartbeat_at = excluded.heartbeat_at, stopped_at = NULL",
        &[&b.name, &b.address, &b.version, &b.started_at.0, &b.now.0],
    )
    .await?;
    Ok(())
}

pub(crate) async fn node_stopped(tx: &mut Tx, name: &str, now: Timestamp) -> Result<()> {
    exec(
        tx,
        "UPDATE nodes SET stopped_at = $2, heartbeat_at = $2 WHERE name = $1",
        &[&name, &now.0],
    )
    .await?;
    Ok(())
}

pub(crate) const NODES: &str = crate::sql::ops::nodes::NODES.postgres;

pub(crate) async fn nodes(c: &Client) -> Result<Vec<NodeRow>> {
    let rows = c.query(NODES, &[]).await?;
    rows.iter()
        .map(|r| Ok(NodeColumns::read(r)?.decode()))
        .collect()
}

pub(crate) async fn remove_node(tx: &mut Tx, name: &str) -> Result<()> {
    if exec(tx, "DELETE FROM nodes WHERE name = $1", &[&name]).await? == 0 {
        return Err(StoreError::UnknownNode(name.to_string()));
    }
    Ok(())
}

//! This node's heartbeat in the store, and the `node_silent` alert for the other
//! nodes sharing it: a node that runs by its own account (it never recorded a clean
//! stop) but has not beaten for `node_silent_after`. Each node looks at the others
//! every heartbeat; the store keeps at most one firing alert per node, so the fleet
//! raises it once however many nodes see it.

use crate::engine::Inner;
use meanwhile_core::{AlertKind, NodeBeat, NodeInfo, Timestamp};
use meanwhile_store::NewAlert;
use std::collections::HashSet;
use std::sync::Arc;

/// The version nodes report.
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn subject(node: &str) -> String {
    format!("node:{node}")
}

pub(crate) fn start(inner: &Arc<Inner>) {
    inner.spawn_loop("nodes", beat_loop);
}

fn beat(inner: &Inner, started_at: Timestamp) -> NodeBeat {
    NodeBeat {
        name: inner.node.clone(),
        address: inner.config.node_address.clone(),
        version: VERSION.to_string(),
        started_at,
        now: inner.now(),
    }
}

async fn beat_loop(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    let started_at = inner.now();
    // Nodes with a firing node_silent alert, so that a node on time costs no write.
    let mut firing: Option<HashSet<String>> = None;
    let mut clock = inner.config.clock.looker("nodes");
    loop {
        let _ = clock.now();
        let beat = match crate::fault::point("nodes.beat") {
            Ok(()) => inner.store.beat(beat(&inner, started_at)).await,
            Err(e) => Err(e),
        };
        match beat {
            Ok(()) => inner.loops.ok("nodes"),
            Err(e) => inner.loop_failed("nodes", format_args!("writing this node's heartbeat"), &e),
        }
        look(&inner, &mut firing).await;
        clock.looked();
        tokio::select! {
            _ = clock.sleep(inner.config.node_heartbeat) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Fires or resolves `node_silent` for every other node.
async fn look(inner: &Inner, firing: &mut Option<HashSet<String>>) {
    let firing = match firing {
        Some(f) => f,
        None => match inner.store.alerts(false, u32::MAX).await {
            Ok(alerts) => firing.insert(
                alerts
                    .into_iter()
                    .filter(|a| a.kind == AlertKind::NodeSilent)
                    .filter_map(|a| {
                        a.message
                            .strip_prefix("node ")
                            .and_then(|m| m.split(' ').next())
                            .map(str::to_string)
                    })
                    .collect(),
            ),
            Err(e) => {
                inner.loop_failed("nodes", format_args!("reading the firing alerts"), &e);
                return;
            }
        },
    };
    let rows = match inner.store.nodes().await {
        Ok(r) => r,
        Err(e) => {
            inner.loop_failed("nodes", format_args!("reading the nodes"), &e);
            return;
        }
    };
    let now = inner.now();
    let after = inner.config.node_silent_after.as_millis() as u64;
    let mut seen = HashSet::new();
    for row in rows {
        let name = row.beat.name.clone();
        seen.insert(name.clone());
        if name == inner.node {
            continue;
        }
        if row.is_silent(now, after) {
            if firing.contains(&name) {
                continue;
            }
            let alert = NewAlert {
                kind: AlertKind::NodeSilent,
                subject: subject(&name),
                message: format!(
                    "node {name} is silent: no heartbeat for {} (last at {}), with {} running task(s)",
                    meanwhile_core::format_duration(std::time::Duration::from_millis(
                        row.beat.now.millis_until(now)
                    )),
                    row.beat.now.rfc3339(),
                    row.running
                ),
                task: None,
                queue: None,
            };
            match inner.store.fire_alert(alert, now).await {
                Ok(fired) => {
                    if let Some(a) = fired {
                        tracing::warn!("alert: {}", a.message);
                    }
                    firing.insert(name);
                }
                Err(e) => {
                    inner.loop_failed("nodes", format_args!("firing a node_silent alert"), &e)
                }
            }
        } else if firing.contains(&name) {
            let why = if row.stopped_at.is_some() {
                "was stopped"
            } else {
                "beats again"
            };
            resolve(inner, firing, &name, why, now).await;
        }
    }
    // A node removed while its alert fired: nothing is silent any more.
    let gone: Vec<String> = firing.difference(&seen).cloned().collect();
    for name in gone {
        resolve(inner, firing, &name, "was removed", now).await;
    }
}

async fn resolve(
    inner: &Inner,
    firing: &mut HashSet<String>,
    name: &str,
    why: &str,
    now: Timestamp,
) {
    let message = format!("node {name} {why}");
    match inner
        .store
        .resolve_alert(AlertKind::NodeSilent, &subject(name), &message, now)
        .await
    {
        Ok(_) => {
            firing.remove(name);
        }
        Err(e) => inner.loop_failed("nodes", format_args!("resolving a node_silent alert"), &e),
    }
}

/// The nodes as listed at `now`.
pub(crate) async fn list(inner: &Inner) -> crate::Result<Vec<NodeInfo>> {
    let now = inner.now();
    let after = inner.config.node_silent_after.as_millis() as u64;
    Ok(inner
        .store
        .nodes()
        .await?
        .into_iter()
        .map(|r| r.info(now, after))
        .collect())
}

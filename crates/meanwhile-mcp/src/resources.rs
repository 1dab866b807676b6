//! Task output as MCP resources: `meanwhile://tasks/{id}/output`, read a page at a
//! time, and watched for subscribers.

use crate::error::to_mcp;
use meanwhile_core::{Backend, ListFilter, OutputQuery, TaskId, WaitFor};
use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};
use std::future::Future;
use std::time::Duration;

/// The URI template of a task's output.
pub(crate) const TEMPLATE: &str = "meanwhile://tasks/{id}/output";
/// Most bytes of output in one read: head and tail are kept, the middle elided.
const READ_BYTES: usize = 100_000;
/// How long one watch request blocks; a watch is a sequence of these.
const WATCH_SLICE: Duration = Duration::from_secs(60);
/// A pause after each update, so a task that prints without pause costs its
/// subscribers one update per pause rather than one per write.
const UPDATE_PAUSE: Duration = Duration::from_millis(200);

/// A parsed output URI: the task, and how to read it (`?since=&tail=&grep=&max_bytes=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutputUri {
    pub id: TaskId,
    pub query: OutputQuery,
}

/// The URI of task `id`'s output.
pub(crate) fn uri(id: TaskId) -> String {
    format!("meanwhile://tasks/{id}/output")
}

/// Parses `meanwhile://tasks/7/output[?since=N&tail=N&grep=RE&max_bytes=N]`.
pub(crate) fn parse(uri: &str) -> Result<OutputUri, ErrorData> {
    let bad = |why: &str| {
        ErrorData::invalid_params(
            format!(
                "{why}: {uri:?}; task output resources look like meanwhile://tasks/7/output (optionally ?since=N&tail=N&grep=REGEX&max_bytes=N)"
            ),
            None,
        )
    };
    let rest = uri
        .strip_prefix("meanwhile://tasks/")
        .ok_or_else(|| bad("not a meanwhile resource"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let id = path
        .strip_suffix("/output")
        .ok_or_else(|| bad("unknown resource"))?;
    let id: TaskId = id
        .parse()
        .map_err(|e: String| bad(&format!("bad task id ({e})")))?;
    let mut q = OutputQuery {
        strip_ansi: true,
        max_bytes: Some(READ_BYTES),
        ..OutputQuery::default()
    };
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let number = |what: &str| {
            v.parse::<u64>()
                .map_err(|_| bad(&format!("{what} must be a whole number, got {v:?}")))
        };
        match k.as_ref() {
            "since" => q.since = Some(number("since")?),
            "tail" => {
                q.tail =
                    Some(usize::try_from(number("tail")?).map_err(|_| bad("tail is too large"))?)
            }
            "max_bytes" => {
                let n = number("max_bytes")?;
                if n > READ_BYTES as u64 {
                    return Err(bad(&format!(
                        "max_bytes must be at most {READ_BYTES}, got {n}"
                    )));
                }
                q.max_bytes = Some(n as usize);
            }
            "grep" => q.grep = Some(v.into_owned()),
            other => return Err(bad(&format!("unknown parameter {other:?}"))),
        }
    }
    Ok(OutputUri { id, query: q })
}

/// The resource template clients fill in.
pub(crate) fn template() -> ResourceTemplate {
    ResourceTemplate::new(TEMPLATE, "task-output")
        .with_title("Output of a meanwhile task")
        .with_description(
            "Everything a background task printed (stdout and stderr merged, ANSI escapes removed); \
             long output keeps its head and tail. Add ?since=N (a byte cursor), tail=N, grep=REGEX \
             or max_bytes=N to read part of it. Subscribe to hear when it grows or the task ends.",
        )
        .with_mime_type("text/plain")
}

/// The output resources of `session`'s newest tasks.
pub(crate) async fn list(backend: &dyn Backend, session: &str) -> Result<Vec<Resource>, ErrorData> {
    let page = backend
        .list(ListFilter {
            session: Some(session.to_string()),
            limit: Some(50),
            ..ListFilter::default()
        })
        .await
        .map_err(|e| to_mcp(&e))?;
    Ok(page
        .tasks
        .into_iter()
        .map(|t| {
            Resource::new(uri(t.id), format!("task-{}-output", t.id))
                .with_title(format!("task {} ({}): {}", t.id, t.name, t.state.as_str()))
                .with_mime_type("text/plain")
        })
        .collect())
}

/// Reads the output `uri` names.
/// A resource-not-found error carries the URI asked for in its `data`, as the MCP
/// specification's example does.
pub(crate) fn naming_uri(mut e: ErrorData, uri: &str) -> ErrorData {
    if e.code == rmcp::model::ErrorCode::RESOURCE_NOT_FOUND {
        let mut data = match e.data.take() {
            Some(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        data.insert("uri".into(), uri.into());
        e.data = Some(data.into());
    }
    e
}

pub(crate) async fn read(
    backend: &dyn Backend,
    uri: &str,
) -> Result<ReadResourceResult, ErrorData> {
    let OutputUri { id, query } = parse(uri)?;
    let chunk = backend
        .read_output(id, query)
        .await
        .map_err(|e| naming_uri(to_mcp(&e), uri))?;
    // Output changes as the task runs: a client must not serve it from a cache.
    Ok(ReadResourceResult::new(vec![ResourceContents::text(chunk.text, uri)]).with_ttl_ms(0))
}

/// Calls `updated` whenever the output of the task `uri` names grows, and once when
/// the task ends; returns after that (or when the task cannot be read).
pub(crate) async fn watch<F, Fut>(backend: &dyn Backend, uri: &str, mut updated: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let Ok(OutputUri { id, query }) = parse(uri) else {
        return;
    };
    let mut cursor = query.since.unwrap_or(0);
    let mut failures = 0u32;
    loop {
        let q = OutputQuery {
            since: Some(cursor),
            // Only whether there is more matters here, not the text.
            max_bytes: Some(1),
            wait: Some(WaitFor::Output),
            timeout: Some(WATCH_SLICE),
            ..OutputQuery::default()
        };
        let chunk = match backend.read_output(id, q).await {
            Ok(c) => {
                failures = 0;
                c
            }
            Err(e) if e.code == meanwhile_core::ErrorCode::Unavailable && failures < 8 => {
                // The daemon may be restarting: back off and try again.
                failures += 1;
                tokio::time::sleep(Duration::from_millis(250) * 2u32.pow(failures)).await;
                continue;
            }
            Err(e) => {
                tracing::debug!(%uri, "stopped watching: {e}");
                return;
            }
        };
        let grew = chunk.total_bytes > cursor;
        let ended = chunk.state.is_terminal();
        cursor = cursor.max(chunk.total_bytes);
        if (grew || ended) && !updated().await {
            return;
        }
        if ended {
            return;
        }
        if grew {
            tokio::time::sleep(UPDATE_PAUSE).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_uris_parse_with_their_options() {
        let u = parse("meanwhile://tasks/7/output").unwrap();
        assert_eq!(u.id, TaskId(7));
        assert_eq!(u.query.since, None);
        assert!(u.query.strip_ansi);
        let u = parse("meanwhile://tasks/12/output?since=40&tail=5&grep=err%7Cwarn").unwrap();
        assert_eq!(u.id, TaskId(12));
        assert_eq!(u.query.since, Some(40));
        assert_eq!(u.query.tail, Some(5));
        assert_eq!(u.query.grep.as_deref(), Some("err|warn"));
        for bad in [
            "file:///etc/passwd",
            "meanwhile://tasks/x/output",
            "meanwhile://tasks/0/output",
            "meanwhile://tasks/7/log",
            "meanwhile://tasks/7/output?since=-1",
            "meanwhile://tasks/7/output?colour=1",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.message.contains("meanwhile://tasks/7/output"),
                "{bad}: {e:?}"
            );
        }
        assert_eq!(uri(TaskId(3)), "meanwhile://tasks/3/output");
    }
}

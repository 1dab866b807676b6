//! The server-sent event stream of `GET /v1/events`, parsed into events.

use crate::client::Client;
use crate::error::ClientError;
use futures_util::{Stream, StreamExt};
use http_body_util::BodyExt;
use hyper::Method;
use hyper::body::Incoming;
use meanwhile_core::Event;

/// Events as the daemon sends them. Remembers the last id, so that
/// [`EventStream::reconnect`] resumes without gaps or repeats.
pub struct EventStream {
    client: Client,
    events: sse_stream::SseStream<Incoming>,
    last_id: Option<i64>,
}

impl Client {
    /// The event stream: events after `after` from the durable log, then live ones
    /// (only live ones when `after` is `None`).
    pub async fn events(&self, after: Option<i64>) -> Result<EventStream, ClientError> {
        EventStream::open(self.clone(), after).await
    }
}

impl EventStream {
    async fn open(client: Client, after: Option<i64>) -> Result<EventStream, ClientError> {
        let path = match after {
            Some(a) => format!("/v1/events?after={a}"),
            None => "/v1/events".to_string(),
        };
        let req = client.request(Method::GET, &path, None, None)?;
        // A stream holds its connection for as long as it lives: never pooled.
        let mut sender = client.pool().connect().await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| client.protocol(e))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(
                match serde_json::from_slice::<meanwhile_core::http::ErrorBody>(&body) {
                    Ok(e) => ClientError::Api(e.error),
                    Err(_) => client.protocol(format!("the daemon answered {status}")),
                },
            );
        }
        Ok(EventStream {
            client,
            events: sse_stream::SseStream::new(resp.into_body()),
            last_id: after,
        })
    }

    /// The sequence number of the last event received.
    pub fn last_id(&self) -> Option<i64> {
        self.last_id
    }

    /// Opens the stream again after the last event received.
    pub async fn reconnect(self) -> Result<EventStream, ClientError> {
        EventStream::open(self.client, self.last_id).await
    }

    /// The next event; `None` when the daemon ended the stream.
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        let got = next_event(&mut self.events).await?;
        Some(match got {
            Ok(e) => {
                self.last_id = Some(e.seq);
                Ok(e)
            }
            Err(why) => Err(self.client.protocol(why)),
        })
    }
}

/// The next event of an SSE stream (`\n`, `\r\n` or `\r` line ends, a `data:` field
/// over several lines, comments), skipping keep-alives; `None` at its end.
async fn next_event<S>(events: &mut S) -> Option<Result<Event, String>>
where
    S: Stream<Item = Result<sse_stream::Sse, sse_stream::Error>> + Unpin,
{
    loop {
        match events.next().await? {
            Err(e) => return Some(Err(format!("the event stream broke: {e}"))),
            Ok(sse) => match sse.data {
                // A keep-alive comment, or a field without data.
                None => continue,
                Some(data) if data.is_empty() => continue,
                Some(data) => {
                    return Some(
                        serde_json::from_str::<Event>(&data)
                            .map_err(|e| format!("a bad event: {e}")),
                    );
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events `chunks` make, as a server may cut its bytes.
    async fn parse(chunks: &[&str]) -> Vec<Result<Event, String>> {
        let owned: Vec<Result<bytes::Bytes, std::io::Error>> = chunks
            .iter()
            .map(|c| Ok(bytes::Bytes::from(c.to_string())))
            .collect();
        let mut events =
            sse_stream::SseStream::from_bytes_stream(futures_util::stream::iter(owned));
        let mut out = Vec::new();
        while let Some(e) = next_event(&mut events).await {
            out.push(e);
        }
        out
    }

    fn event(seq: i64) -> String {
        format!(r#"{{"seq":{seq},"at":1,"kind":"submitted","task_id":{seq},"data":{{}}}}"#)
    }

    #[tokio::test]
    async fn events_are_read_whatever_the_line_ends_and_however_the_bytes_are_cut() {
        let (a, b, c) = (event(1), event(2), event(3));
        // CRLF, a comment, data over two lines (joined with a newline, which JSON
        // allows as whitespace), and a chunk cut inside a line end.
        // Between two members, so the joining newline is whitespace to JSON.
        let split = b.find(",\"at\"").unwrap() + 1;
        let chunks = [
            format!(": keep-alive\r\n\r\nid: 1\r\nevent: submitted\r\ndata: {a}\r\n\r"),
            format!("\nid: 2\ndata: {}\ndata: {}\n\n", &b[..split], &b[split..]),
            format!("id: 3\rdata: {c}\r\r"),
        ];
        let chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let seqs: Vec<i64> = parse(&chunks)
            .await
            .into_iter()
            .map(|e| e.unwrap().seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
        let bad = parse(&["data: {not json\n\n"]).await;
        assert!(
            bad[0].as_ref().unwrap_err().starts_with("a bad event"),
            "{bad:?}"
        );
    }
}

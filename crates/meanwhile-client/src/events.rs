//! The server-sent event stream of `GET /v1/events`, parsed into events.

use crate::client::Client;
use crate::error::ClientError;
use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use hyper::Method;
use hyper::body::Incoming;
use meanwhile_core::Event;

/// Events as the daemon sends them. Remembers the last id, so that
/// [`EventStream::reconnect`] resumes without gaps or repeats.
pub struct EventStream {
    client: Client,
    body: Incoming,
    buf: BytesMut,
    last_id: Option<i64>,
}

impl EventStream {
    pub(crate) async fn open(
        client: Client,
        after: Option<i64>,
    ) -> Result<EventStream, ClientError> {
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
            body: resp.into_body(),
            buf: BytesMut::new(),
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
        loop {
            if let Some(block) = take_block(&mut self.buf) {
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.strip_prefix(' ').unwrap_or(d));
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some(match serde_json::from_str::<Event>(&data) {
                    Ok(e) => {
                        self.last_id = Some(e.seq);
                        Ok(e)
                    }
                    Err(e) => Err(self.client.protocol(format!("a bad event: {e}"))),
                });
            }
            match self.body.frame().await {
                None => return None,
                Some(Err(e)) => return Some(Err(self.client.protocol(e))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// Takes one event block (up to a blank line) off the front of `buf`.
fn take_block(buf: &mut BytesMut) -> Option<String> {
    let text = &buf[..];
    let end = text.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2))?;
    let block = String::from_utf8_lossy(&text[..end.0]).into_owned();
    buf.advance(end.0 + end.1);
    Some(block)
}

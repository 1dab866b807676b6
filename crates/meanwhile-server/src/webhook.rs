//! Webhooks: a task's end POSTed as JSON to a URL from `config.toml`, signed with
//! HMAC-SHA256 when a secret is set. The runtime's hook runner delivers each end at
//! least once and tries a failed POST again with backoff.

use hmac::{Hmac, KeyInit, Mac};
use meanwhile_core::Timestamp;
use meanwhile_runtime::{AlertSink, EndHook, TaskEnd};
use sha2::Sha256;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// How long one POST may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of a refusing answer quoted in the log.
const ANSWER_QUOTED: usize = 300;

/// The header with the signature: `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "x-meanwhile-signature";
/// The header naming the delivery, the same when an end is delivered again.
pub const DELIVERY_HEADER: &str = "x-meanwhile-delivery";

/// POSTs each end to one URL.
pub(crate) struct Webhook {
    url: String,
    secret: Option<String>,
    client: reqwest::Client,
}

impl Webhook {
    pub(crate) fn new(url: &str, secret: Option<String>) -> Result<Webhook, String> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| format!("webhook {url:?} is not a URL ({e})"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "webhook {url:?} must be an http:// or https:// URL"
            ));
        }
        // reqwest is built without a default crypto provider (see the root Cargo.toml).
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("meanwhile/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        Ok(Webhook {
            url: url.to_string(),
            secret,
            client,
        })
    }
}

/// The dead man's switch: fetches `url` every `every` until `down` says the daemon
/// stops, so that a monitor outside (healthchecks.io, Cronitor, an uptime check)
/// notices when meanwhile is gone. A failed fetch is logged; the next one comes on
/// time, by `clock`.
pub(crate) async fn heartbeat(
    url: String,
    every: Duration,
    clock: std::sync::Arc<meanwhile_runtime::Clock>,
    mut down: tokio::sync::watch::Receiver<bool>,
) {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT.min(every.max(Duration::from_secs(1))))
        .user_agent(concat!("meanwhile/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("heartbeat client: {e}");
            return;
        }
    };
    let mut looker = clock.looker("heartbeat");
    let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
    let mut next = looker.now();
    loop {
        let now = looker.now();
        if now >= next {
            match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => tracing::debug!("heartbeat sent to {url}"),
                Ok(r) => tracing::warn!("heartbeat to {url} answered {}", r.status()),
                Err(e) => tracing::warn!("heartbeat to {url} failed: {e}"),
            }
        }
        // A clock set back does not delay the next one by more than `every`.
        next = Timestamp(next.0.min(now.0.saturating_add(every_ms)));
        if now >= next {
            next = Timestamp(now.0.saturating_add(every_ms));
        }
        looker.looked();
        tokio::select! {
            _ = looker.sleep_until(next) => {}
            _ = down.wait_for(|d| *d) => return,
        }
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any size");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("sha256={}", hex::encode(digest))
}

impl Webhook {
    /// POSTs `body`, signed, naming the delivery `delivery`.
    fn post(
        &self,
        delivery: String,
        body: serde_json::Result<Vec<u8>>,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        let mut req = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(DELIVERY_HEADER, delivery);
        let secret = self.secret.clone();
        Box::pin(async move {
            let body = body.map_err(|e| format!("encoding the body: {e}"))?;
            if let Some(secret) = secret {
                req = req.header(SIGNATURE_HEADER, signature(&secret, &body));
            }
            let answer = req.body(body).send().await.map_err(|e| e.to_string())?;
            let status = answer.status();
            if status.is_success() {
                return Ok(());
            }
            let text = answer.text().await.unwrap_or_default();
            Err(format!(
                "answered {status}: {}",
                meanwhile_core::shorten(&text, ANSWER_QUOTED)
            ))
        })
    }
}

impl EndHook for Webhook {
    fn name(&self) -> String {
        format!("webhook {}", self.url)
    }

    fn deliver(&self, end: TaskEnd) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        let body = serde_json::to_vec(&serde_json::json!({
            "id": end.delivery,
            "event": "task_ended",
            "at": end.task.finished_at,
            "task": end.task,
        }));
        self.post(end.delivery.to_string(), body)
    }
}

/// An alert sink's body is the alert: `id, kind, state, message, task, queue, at`.
impl AlertSink for Webhook {
    fn name(&self) -> String {
        format!("alert webhook {}", self.url)
    }

    fn deliver(
        &self,
        alert: meanwhile_core::Alert,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        let state = match alert.state {
            meanwhile_core::AlertState::Firing => "firing",
            meanwhile_core::AlertState::Resolved => "resolved",
        };
        self.post(
            format!("alert-{}-{state}", alert.id),
            serde_json::to_vec(&alert),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_http_urls_are_webhooks() {
        assert!(super::Webhook::new("ftp://x/y", None).is_err());
        assert!(super::Webhook::new("not a url", None).is_err());
        assert!(super::Webhook::new("https://hooks.example.com/x", None).is_ok());
    }
}

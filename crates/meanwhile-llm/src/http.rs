//! The HTTP side shared by both wire formats: one POST of JSON, with timeouts, retries
//! and backoff, and the reading of error bodies and malformed replies.

use std::fmt;
use std::sync::Once;
use std::time::{Duration, SystemTime};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::Value;

use crate::config::{Resolved, RetryConfig};
use crate::conversation::{ContentBlock, Response, StopReason};
use crate::error::LlmError;
use crate::price::PriceTable;
use crate::usage::Usage;

/// A client bound to one endpoint of one provider.
pub(crate) struct HttpTransport {
    client: reqwest::Client,
    provider: &'static str,
    url: String,
    headers: HeaderMap,
    retry: RetryConfig,
    timeout: Duration,
}

impl fmt::Debug for HttpTransport {
    // Written by hand so that a key in the headers can never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransport")
            .field("provider", &self.provider)
            .field("url", &self.url)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A successful answer, parsed, and how many attempts it took.
pub(crate) struct Reply<T> {
    pub parsed: T,
    pub attempts: u32,
}

/// A reply read from either wire format.
pub(crate) struct Parsed {
    pub model: String,
    pub content: Vec<ContentBlock>,
    pub stop_reason: StopReason,
    pub usage: Usage,
}

impl Reply<Parsed> {
    /// The provider-neutral response, priced; `requested` names the model when the
    /// reply does not.
    pub fn into_response(self, requested: &str, prices: &PriceTable) -> Response {
        let parsed = self.parsed;
        let model = if parsed.model.is_empty() {
            requested.to_owned()
        } else {
            parsed.model
        };
        Response {
            cost: prices.cost(&model, &parsed.usage),
            model,
            content: parsed.content,
            stop_reason: parsed.stop_reason,
            usage: parsed.usage,
            attempts: self.attempts,
        }
    }
}

/// reqwest is built without a default crypto provider (see the root Cargo.toml), so
/// one must be installed before the first client is built. If the program installed
/// one already, that one is kept.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A header value from configuration, marked sensitive when it holds a secret so
/// that reqwest never prints it.
pub(crate) fn header_value(
    provider: &'static str,
    what: &str,
    value: &str,
    sensitive: bool,
) -> Result<HeaderValue, LlmError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        LlmError::InvalidConfig(format!(
            "the {what} for {provider} holds characters that cannot go in an HTTP header"
        ))
    })?;
    header.set_sensitive(sensitive);
    Ok(header)
}

impl HttpTransport {
    /// A transport that POSTs to `url` with `headers` on every request.
    pub fn new(
        resolved: &Resolved,
        url: String,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<Self, LlmError> {
        install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(resolved.request_timeout)
            // Failing to connect should not take the whole request timeout.
            .connect_timeout(resolved.request_timeout.min(Duration::from_secs(30)))
            .user_agent(concat!("meanwhile/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(LlmError::Client)?;
        let mut header_map = HeaderMap::new();
        header_map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in headers {
            header_map.insert(name, value);
        }
        Ok(HttpTransport {
            client,
            provider: resolved.kind.name(),
            url,
            headers: header_map,
            retry: resolved.retry.clone(),
            timeout: resolved.request_timeout,
        })
    }

    /// POSTs `body` and parses a successful answer with `parse`, retrying retryable
    /// failures as configured. Parsing is inside the retry loop because some
    /// providers (OpenRouter) report an upstream outage as HTTP 200 with an error
    /// body, which `parse` turns into a retryable error.
    pub async fn post_json<T>(
        &self,
        body: &Value,
        parse: impl Fn(&[u8]) -> Result<T, LlmError>,
    ) -> Result<Reply<T>, LlmError> {
        // Serialized once: every attempt sends the same bytes (a copy per attempt
        // is cheap next to a model call).
        let bytes = bytes_of(body);
        let mut attempt: u32 = 1;
        loop {
            let err = match self
                .attempt(bytes.clone())
                .await
                .and_then(|body| parse(&body))
            {
                Ok(parsed) => {
                    return Ok(Reply {
                        parsed,
                        attempts: attempt,
                    });
                }
                Err(err) => err,
            };
            if !err.is_retryable() {
                return Err(err);
            }
            if attempt >= self.retry.max_attempts {
                return Err(if attempt > 1 {
                    LlmError::RetriesExhausted {
                        provider: self.provider,
                        attempts: attempt,
                        last: Box::new(err),
                    }
                } else {
                    err
                });
            }
            let Some(delay) = retry_delay(&self.retry, attempt, err.retry_after(), jitter()) else {
                tracing::warn!(
                    provider = self.provider,
                    retry_after = ?err.retry_after(),
                    "provider asked for a longer pause than retry.max_retry_after; not retrying"
                );
                return Err(err);
            };
            tracing::warn!(
                provider = self.provider,
                attempt,
                ?delay,
                error = %DisplayChain(&err),
                "LLM call failed; retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, body: Vec<u8>) -> Result<Vec<u8>, LlmError> {
        let response = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await
            .map_err(|err| self.transport_error(err))?;
        let status = response.status();
        let retry_after = retry_after(response.headers(), SystemTime::now());
        let body = response
            .bytes()
            .await
            .map_err(|err| self.transport_error(err))?;
        if status.is_success() {
            return Ok(body.to_vec());
        }
        Err(LlmError::Api {
            provider: self.provider,
            status: status.as_u16(),
            message: error_message(&body, status.canonical_reason()),
            retry_after,
        })
    }

    fn transport_error(&self, err: reqwest::Error) -> LlmError {
        if err.is_timeout() {
            LlmError::Timeout {
                provider: self.provider,
                timeout: self.timeout,
                source: err,
            }
        } else if err.is_connect() {
            LlmError::Connect {
                provider: self.provider,
                url: self.url.clone(),
                source: err,
            }
        } else {
            LlmError::Transport {
                provider: self.provider,
                url: self.url.clone(),
                source: err,
            }
        }
    }
}

fn bytes_of(body: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail: its map keys are strings.
    serde_json::to_vec(body).unwrap_or_default()
}

/// The error and its causes on one line, for logs.
struct DisplayChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// A random factor in [0.5, 1.0] that spreads the retries of many clients hit by
/// the same outage.
fn jitter() -> f64 {
    0.5 + rand::random::<f64>() / 2.0
}

/// How long to wait after failed attempt number `attempt` (1-based), or `None` when
/// the provider asked for a pause longer than the configured maximum.
pub(crate) fn retry_delay(
    retry: &RetryConfig,
    attempt: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<Duration> {
    if let Some(wait) = retry_after {
        // The provider knows when it will take us again; waiting less only earns
        // another 429.
        return (wait <= retry.max_retry_after).then_some(wait);
    }
    let doublings = attempt.saturating_sub(1).min(30);
    let backoff = retry
        .initial_backoff
        .saturating_mul(1u32 << doublings)
        .min(retry.max_backoff);
    Some(backoff.mul_f64(jitter.clamp(0.0, 1.0)))
}

/// The pause a provider asked for: OpenAI's `retry-after-ms`, else the standard
/// `Retry-After` in seconds or as an HTTP-date.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now)
}

fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        // Duration::from_secs_f64 panics on negative or huge values.
        return (seconds.is_finite() && (0.0..1e9).contains(&seconds))
            .then(|| Duration::from_secs_f64(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    // A date already past means "now".
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The provider's own message from an error body: `{"error":{"message":...}}` as
/// Anthropic, OpenAI and OpenRouter send it, `{"error":"..."}` as Ollama does,
/// `{"message":...}` as vLLM does; else the start of the body.
pub(crate) fn error_message(body: &[u8], reason: Option<&str>) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let message = value
            .pointer("/error/message")
            .and_then(Value::as_str)
            .or_else(|| value.get("error").and_then(Value::as_str))
            .or_else(|| value.get("message").and_then(Value::as_str));
        if let Some(message) = message {
            let kind = value
                .pointer("/error/type")
                .and_then(Value::as_str)
                .filter(|kind| !kind.is_empty() && !message.contains(kind));
            return match kind {
                Some(kind) => format!("{message} ({kind})"),
                None => message.to_owned(),
            };
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        reason.unwrap_or("no error message").to_owned()
    } else {
        excerpt(text, 500)
    }
}

/// At most `max` bytes of `text`, cut on a character boundary.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &text[..end], text.len())
}

/// Parses a successful reply body as JSON, or says clearly that it is not.
pub(crate) fn parse_body(provider: &'static str, body: &[u8]) -> Result<Value, LlmError> {
    serde_json::from_slice(body).map_err(|err| LlmError::MalformedResponse {
        provider,
        what: format!(
            "the body is not valid JSON ({err}); it starts with {:?}",
            excerpt(&String::from_utf8_lossy(body), 200)
        ),
    })
}

/// Reads a JSON reply into the wire type of a format, naming the field at fault.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    provider: &'static str,
    format: &str,
    value: Value,
) -> Result<T, LlmError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let what = if path == "." {
            format!("the body is not a {format} reply: {inner}")
        } else {
            format!("the body is not a {format} reply: at `{path}`: {inner}")
        };
        LlmError::MalformedResponse { provider, what }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry() -> RetryConfig {
        RetryConfig {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            max_retry_after: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let delays: Vec<_> = (1..=6)
            .map(|attempt| retry_delay(&retry(), attempt, None, 1.0).unwrap())
            .collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(
            delays,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        // Jitter only ever shortens, down to half.
        assert_eq!(retry_delay(&retry(), 2, None, 0.5), Some(ms(100)));
        // No overflow however many attempts.
        assert_eq!(retry_delay(&retry(), u32::MAX, None, 1.0), Some(ms(1000)));
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_cap() {
        let secs = Duration::from_secs;
        // Longer than the exponential backoff would be: still honoured.
        assert_eq!(retry_delay(&retry(), 1, Some(secs(7)), 1.0), Some(secs(7)));
        assert_eq!(
            retry_delay(&retry(), 1, Some(secs(60)), 1.0),
            Some(secs(60))
        );
        assert_eq!(retry_delay(&retry(), 1, Some(secs(61)), 1.0), None);
        assert!(
            (0..1000)
                .map(|_| jitter())
                .all(|j| (0.5..=1.0).contains(&j))
        );
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_milliseconds() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let check = |value: &str, expect: Option<Duration>| {
            assert_eq!(
                parse_retry_after(value, now),
                expect,
                "Retry-After: {value}"
            );
        };
        check("3", Some(Duration::from_secs(3)));
        check(" 0 ", Some(Duration::ZERO));
        check("1.5", Some(Duration::from_millis(1500)));
        check(
            "Wed, 21 Oct 2015 07:28:30 GMT",
            Some(Duration::from_secs(30)),
        );
        check("Wed, 21 Oct 2015 07:27:00 GMT", Some(Duration::ZERO));
        check("-1", None);
        check("soon", None);
        check("1e300", None);

        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("9"));
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_millis(250)));
        headers.remove("retry-after-ms");
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(9)));
    }

    #[test]
    fn error_messages_come_from_every_known_body_shape() {
        let check = |body: &str, expect: &str| {
            assert_eq!(error_message(body.as_bytes(), Some("Bad Request")), expect);
        };
        check(
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}"#,
            "max_tokens: too big (invalid_request_error)",
        );
        check(
            r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#,
            "Incorrect API key provided (invalid_request_error)",
        );
        check(r#"{"error":"model 'x' not found"}"#, "model 'x' not found");
        check(
            r#"{"object":"error","message":"bad model","type":"NotFoundError","code":404}"#,
            "bad model",
        );
        check("<html>bad gateway</html>", "<html>bad gateway</html>");
        check("", "Bad Request");
        let long = "é".repeat(400);
        assert!(error_message(long.as_bytes(), None).ends_with("(800 bytes in all)"));
    }

    #[test]
    fn malformed_bodies_say_what_is_wrong() {
        let err = parse_body("openai", b"<html>oops</html>").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("not valid JSON"), "{text}");
        assert!(text.contains("<html>oops</html>"), "{text}");
    }
}

//! Request extractors whose every failure is a JSON error naming what was wrong:
//! a body over the size limit, malformed JSON, an unknown field, a wrong type, a bad
//! query parameter or task id. axum's own extractors answer in plain text.

use crate::error::Fail;
use crate::state::AppState;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use meanwhile_core::{ApiError, ErrorCode, TaskId};
use serde::de::DeserializeOwned;

/// A JSON body of type `T`.
pub(crate) struct Body<T>(pub T);

/// A JSON body of type `T`, or `T::default()` when the body is empty.
pub(crate) struct OptBody<T>(pub T);

/// Query parameters of type `T`.
pub(crate) struct Params<T>(pub T);

/// The `{id}` of the path, a task id.
pub(crate) struct IdPath(pub TaskId);

/// An alert's id as the one segment of the path (`{alert}`).
pub(crate) struct AlertPath(pub i64);

/// The one text segment of the path (`{name}`, `{session}`).
pub(crate) struct NamePath(pub String);

async fn read_body(req: Request, limit: usize) -> Result<axum::body::Bytes, Fail> {
    let too_large = || {
        Fail(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the request body is larger than the limit of {limit} bytes (max_body_bytes in config.toml)"
            ),
        ))
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            let is_limit = std::error::Error::source(&e)
                .is_some_and(|s| s.to_string().contains("length limit"))
                || e.to_string().contains("length limit");
            if is_limit {
                too_large()
            } else {
                Fail(ApiError::invalid(
                    "body",
                    format!("could not read the request body: {e}"),
                ))
            }
        })
}

/// Parses `bytes` as a JSON object into `T`, naming the field at fault. Every body
/// is an object: serde would also take a JSON array for a struct.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Fail> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        let what = if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
            "the request body must be a JSON object (see /v1/openapi.json)"
        } else {
            "the request body is not valid JSON; send a JSON object (see /v1/openapi.json)"
        };
        return Err(Fail(ApiError {
            code: ErrorCode::InvalidArgument,
            message: what.to_string(),
            field: None,
        }));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let fail = |field: Option<String>, message: String| {
            Fail(ApiError {
                code: ErrorCode::InvalidArgument,
                message,
                field,
            })
        };
        use serde_json::error::Category;
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                fail(None, format!("the request body is not valid JSON: {inner}"))
            }
            Category::Data if path == "." => fail(None, format!("the request body: {inner}")),
            Category::Data => fail(Some(path.clone()), format!("{path}: {inner}")),
        }
    })
}

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = Fail;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Fail> {
        let bytes = read_body(req, state.settings.max_body_bytes).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Fail(ApiError::invalid(
                "body",
                "this endpoint needs a JSON body (see /v1/openapi.json)",
            )));
        }
        parse_json(&bytes).map(Body)
    }
}

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptBody<T> {
    type Rejection = Fail;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Fail> {
        let bytes = read_body(req, state.settings.max_body_bytes).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptBody(T::default()));
        }
        parse_json(&bytes).map(OptBody)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Fail> {
        let query = parts.uri.query().unwrap_or("");
        if let Some(part) = not_utf8(query) {
            return Err(Fail(ApiError::invalid(
                "query",
                format!(
                    "the query part {part:?} is not UTF-8 once decoded; percent-encode the UTF-8 bytes of the text"
                ),
            )));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de)
            .map(Params)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let field = (path != ".").then_some(path);
                Fail(ApiError {
                    code: ErrorCode::InvalidArgument,
                    message: format!("bad query parameter: {inner}"),
                    field,
                })
            })
    }
}

/// The first name or value of `query` whose percent-decoded bytes are not UTF-8
/// (`%FF`), which `form_urlencoded` would turn into U+FFFD without a word.
fn not_utf8(query: &str) -> Option<&str> {
    query
        .split('&')
        .flat_map(|pair| pair.splitn(2, '='))
        .find(|part| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .is_err()
        })
}

fn form_urlencoded_parse(q: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(q.as_bytes())
}

async fn one_segment<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<String, Fail> {
    Path::<String>::from_request_parts(parts, state)
        .await
        .map(|Path(s)| s)
        .map_err(|e| Fail(ApiError::invalid("path", e.body_text())))
}

/// `s` as a positive integer of digits only: the document says an integer, so
/// `#7`, `+7` and ` 7` are not ids.
fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok().filter(|&n| n > 0)
}

impl<S: Send + Sync> FromRequestParts<S> for AlertPath {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Fail> {
        let s = one_segment(parts, state).await?;
        digits(&s).map(AlertPath).ok_or_else(|| {
            Fail(ApiError::invalid(
                "alert",
                format!(
                    "alert ids are positive integers like 3 (at most {}), got {s:?}; see 'meanwhile alerts'",
                    i64::MAX
                ),
            ))
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Fail> {
        let s = one_segment(parts, state).await?;
        let id = digits(&s).and_then(|_| s.parse::<TaskId>().ok());
        id.map(IdPath).ok_or_else(|| {
            Fail(ApiError::invalid(
                "id",
                format!(
                    "task ids are positive integers like 7 (at most {}), got {s:?}",
                    i64::MAX
                ),
            ))
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for NamePath {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Fail> {
        one_segment(parts, state).await.map(NamePath)
    }
}

//! The bearer token that guards the TCP listener: generated at first start, kept in
//! a 0600 file in the home, compared in constant time.

use crate::error::{ServerError, error_response};
use axum::extract::Request;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use meanwhile_core::{ApiError, ErrorCode};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

/// Reads the token at `path`, creating it (mode 0600) when it does not exist.
pub(crate) fn load_or_create(path: &Path) -> Result<String, ServerError> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ServerError::io(format!("reading {}", path.display()))(e)),
    }
    // The default generator is a CSPRNG seeded from the operating system.
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(ServerError::io(format!("creating {}", path.display())))?;
    f.write_all(token.as_bytes())
        .map_err(ServerError::io(format!("writing {}", path.display())))?;
    Ok(token)
}

fn same(a: &[u8], b: &[u8]) -> bool {
    // Constant time in the length of the secret, so timing tells nothing of it.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: refuses a request without `Authorization: Bearer <token>`.
pub(crate) async fn require_token(token: Arc<String>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if same(g.as_bytes(), token.as_bytes()) => next.run(req).await,
        Some(_) => error_response(ApiError::new(
            ErrorCode::Unauthorized,
            "wrong bearer token (it is in the token file of the daemon's home)",
        )),
        None => error_response(ApiError::new(
            ErrorCode::Unauthorized,
            "this listener needs 'Authorization: Bearer <token>'; the token is in the token file of the daemon's home",
        )),
    }
}

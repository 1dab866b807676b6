//! Completion notices for a tool result: drained from the session so that each
//! reaches the model once, in the words the agent uses for them.

use meanwhile_core::{Backend, Notification};

/// Notices added to one tool result at most; the rest wait for the next call, so a
/// burst of endings never crowds out the answer the model asked for.
pub(crate) const RIDE_ALONG: u32 = 10;

/// The session's undelivered notices as one text block, marked delivered; `None`
/// when there are none (or they could not be fetched: they stay undelivered then,
/// and come with a later result).
pub(crate) async fn ride_along(backend: &dyn Backend, session: &str) -> Option<String> {
    match backend.drain_notifications(session, RIDE_ALONG).await {
        Ok(notices) if notices.is_empty() => None,
        Ok(notices) => Some(text(&notices, notices.len() as u32 >= RIDE_ALONG)),
        Err(e) => {
            tracing::warn!(session, "could not fetch completion notices: {e}");
            None
        }
    }
}

/// The text of `notices`; `maybe_more` adds how to get the ones left waiting.
pub(crate) fn text(notices: &[Notification], maybe_more: bool) -> String {
    let mut s = meanwhile_agent::notices_text(notices);
    if maybe_more {
        s.push_str("\n(More may be waiting: call background_notifications to read them.)");
    }
    s
}

//! Who the store's writes are made for: the actor of the request being served.
//!
//! A server runs each request inside [`acting`]; every store write that request starts
//! (on its own task) is recorded in the audit trail under that actor, in the write's
//! own transaction. Writes started anywhere else (the dispatcher recording an end, the
//! scheduler firing, retention) are the runtime's own and are recorded as
//! [`Actor::Meanwhile`]. The actor is read when the write is queued, which is inside
//! the caller's task, so it cannot leak from one request into another.

use meanwhile_core::Actor;
use std::future::Future;

tokio::task_local! {
    static ACTOR: Actor;
}

/// Runs `f` with every store write it starts recorded as made by `actor`.
pub async fn acting<F: Future>(actor: Actor, f: F) -> F::Output {
    ACTOR.scope(actor, f).await
}

/// The actor of the writes started here: the one [`acting`] set, or meanwhile itself.
pub fn current_actor() -> Actor {
    ACTOR.try_with(Clone::clone).unwrap_or(Actor::Meanwhile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_actor_holds_inside_its_scope_only() {
        assert_eq!(current_actor(), Actor::Meanwhile);
        let token = Actor::Token {
            name: "ci".into(),
            session: None,
        };
        let seen = acting(token.clone(), async { current_actor() }).await;
        assert_eq!(seen, token);
        // A task spawned from inside the scope is not the request: it is meanwhile's.
        let spawned = acting(token, async {
            tokio::spawn(async { current_actor() }).await
        })
        .await
        .unwrap();
        assert_eq!(spawned, Actor::Meanwhile);
        assert_eq!(current_actor(), Actor::Meanwhile);
    }
}

//! The audit trail in the store: records appended with the change they record and
//! its actor, a chain that verifies, and every kind of tampering named: a changed
//! field, a removed record, a removed tail, a forged checkpoint, each made by SQL
//! run on the database directly (the SQLite file, the PostgreSQL database).

use crate::support::NOW;
use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{Actor, AuditFilter, TaskSpec, Timestamp};
use meanwhile_store::{AuditKey, NewTask, Store, acting};

fn key() -> AuditKey {
    AuditKey::new(*b"a key of thirty-two bytes, fixed")
}

fn ci() -> Actor {
    Actor::Token {
        name: "ci".into(),
        session: None,
    }
}

/// Submits a task at `at` as `actor`, stops it (it never started: cancelled), and
/// returns its id: three records (submitted, stop's finish, ...).
async fn submit_and_cancel(store: &dyn Store, actor: Actor, at: Timestamp) -> i64 {
    acting(actor, async {
        let spec = TaskSpec::shell("true").validate().unwrap();
        let r = store.submit(vec![NewTask::new(spec, at)]).await.unwrap();
        let id = r[0].as_ref().unwrap().id();
        store.request_stop(id, at, false).await.unwrap();
        id.0
    })
    .await
}

async fn all(store: &dyn Store) -> Vec<meanwhile_core::AuditRecord> {
    store.audit(AuditFilter::default()).await.unwrap().records
}

both! {
    async fn changes_are_recorded_with_their_actor_and_the_chain_verifies(f: Fixture) {
        let id = submit_and_cancel(&*f.store, ci(), NOW).await;
        // A change made outside any request is meanwhile's own.
        f.store
            .set_queue(
                "gpu",
                QueueUpdate {
                    max_parallel: Some(2),
                    ..QueueUpdate::default()
                },
            )
            .await
            .unwrap();
        let records = all(&*f.store).await;
        let seen: Vec<(&str, &str, &str)> = records
            .iter()
            .map(|r| (r.who.as_str(), r.action.as_str(), r.subject.as_str()))
            .collect();
        let task = format!("task {id}");
        assert_eq!(
            seen,
            [
                ("token ci", "submitted", task.as_str()),
                ("token ci", "finished", task.as_str()),
                ("meanwhile", "queue_set", "queue gpu"),
            ]
        );
        assert!(records[1].summary.contains("cancelled"), "{:?}", records[1]);
        assert!(
            records[2].summary.contains("max_parallel 2"),
            "{:?}",
            records[2]
        );
        assert_eq!(records[0].prev_hash, "0".repeat(64));
        assert_eq!(records[1].prev_hash, records[0].hash);
        // Paging and the task filter.
        let page = f
            .store
            .audit(AuditFilter {
                limit: Some(1),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!((page.records.len(), page.next), (1, Some(records[0].seq)));
        let by_task = f
            .store
            .audit(AuditFilter {
                task: Some(meanwhile_core::TaskId(id)),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(by_task.records.len(), 2);
        // Newest first, paging back in time, with the task filter or without.
        let newest = |after, task| AuditFilter {
            limit: Some(2),
            after,
            task,
            newest_first: true,
            ..AuditFilter::default()
        };
        let first = f.store.audit(newest(None, None)).await.unwrap();
        let seqs: Vec<i64> = first.records.iter().map(|r| r.seq).collect();
        assert_eq!((seqs, first.next), (vec![3, 2], Some(2)));
        let rest = f.store.audit(newest(first.next, None)).await.unwrap();
        let seqs: Vec<i64> = rest.records.iter().map(|r| r.seq).collect();
        assert_eq!((seqs, rest.next), (vec![1], None));
        let task = Some(meanwhile_core::TaskId(id));
        let mine = f.store.audit(newest(Some(2), task)).await.unwrap();
        let seqs: Vec<i64> = mine.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, by_task.records[..1].iter().map(|r| r.seq).collect::<Vec<_>>());

        let v = f.store.verify_audit(key()).await.unwrap();
        assert!(v.intact, "{v:?}");
        assert_eq!((v.records, v.last_seq, v.first_bad_seq), (3, Some(3), None));
    }
}

both! {
    async fn a_changed_field_is_named(f: Fixture) {
        submit_and_cancel(&*f.store, ci(), NOW).await;
        submit_and_cancel(&*f.store, ci(), NOW).await;
        f.edit("UPDATE audit SET actor = '{\"kind\":\"meanwhile\"}' WHERE seq = 3",
        ).await;
        let v = f.store.verify_audit(key()).await.unwrap();
        assert!(!v.intact);
        assert_eq!(v.first_bad_seq, Some(3), "{v:?}");
        assert!(v.problem.unwrap().contains("record 3 was changed"));
    }
}

both! {
    async fn a_removed_record_and_a_removed_tail_are_named(f: Fixture) {
        submit_and_cancel(&*f.store, ci(), NOW).await;
        submit_and_cancel(&*f.store, ci(), NOW).await;
        f.edit("DELETE FROM audit WHERE seq = 2").await;
        let v = f.store.verify_audit(key()).await.unwrap();
        assert_eq!((v.intact, v.first_bad_seq), (false, Some(2)), "{v:?}");
        assert!(v.problem.unwrap().contains("record 2 is missing"));

        let f = f.fresh().await;
        submit_and_cancel(&*f.store, ci(), NOW).await;
        submit_and_cancel(&*f.store, ci(), NOW).await;
        f.edit("DELETE FROM audit WHERE seq >= 3").await;
        let v = f.store.verify_audit(key()).await.unwrap();
        assert_eq!((v.intact, v.first_bad_seq), (false, Some(3)), "{v:?}");
        assert!(v.problem.unwrap().contains("records 3 to 4 are missing"));
    }
}

both! {
    async fn a_record_rewritten_with_a_fresh_hash_is_named_by_the_next(f: Fixture) {
        submit_and_cancel(&*f.store, ci(), NOW).await;
        submit_and_cancel(&*f.store, ci(), NOW).await;
        // Whoever rewrites record 2 and recomputes its hash still cannot make record 3
        // name the new hash without rewriting every record after it.
        let r2 = all(&*f.store).await.remove(1);
        let forged = "x".repeat(64);
        f.edit(&format!("UPDATE audit SET summary = 'nothing happened', hash = '{forged}' WHERE seq = 2"),
        ).await;
        assert_ne!(r2.hash, forged);
        let v = f.store.verify_audit(key()).await.unwrap();
        assert_eq!((v.intact, v.first_bad_seq), (false, Some(2)), "{v:?}");
    }
}

both! {
    async fn pruning_leaves_a_signed_checkpoint_the_rest_verifies_from(f: Fixture) {
        // Two old tasks (at NOW, in 1970), then changes made now.
        submit_and_cancel(&*f.store, ci(), NOW).await;
        submit_and_cancel(&*f.store, ci(), NOW).await;
        let now = Timestamp(NOW.0 + 1);
        let later = meanwhile_core::Timestamp(2_000_000_000_000);
        submit_and_cancel(&*f.store, ci(), later).await;
        let before = all(&*f.store).await;
        assert_eq!(before.len(), 6);

        assert_eq!(f.store.prune_audit(now, key()).await.unwrap(), 4);
        assert_eq!(f.store.prune_audit(now, key()).await.unwrap(), 0);
        let kept = all(&*f.store).await;
        assert_eq!(kept.iter().map(|r| r.seq).collect::<Vec<_>>(), [5, 6]);
        let v = f.store.verify_audit(key()).await.unwrap();
        assert!(v.intact, "{v:?}");
        let cp = v.checkpoint.unwrap();
        assert_eq!((cp.seq, cp.hash.as_str()), (4, before[3].hash.as_str()));
        assert_eq!(v.records, 2);

        // New records chain on; tampering with what remains is still found.
        submit_and_cancel(&*f.store, ci(), later).await;
        assert!(f.store.verify_audit(key()).await.unwrap().intact);
        f.edit("UPDATE audit SET subject = 'task 99' WHERE seq = 6",
        ).await;
        let v = f.store.verify_audit(key()).await.unwrap();
        assert_eq!((v.intact, v.first_bad_seq), (false, Some(6)), "{v:?}");
    }
}

both! {
    async fn a_forged_checkpoint_is_detected(f: Fixture) {
        submit_and_cancel(&*f.store, ci(), NOW).await;
        submit_and_cancel(&*f.store, ci(), Timestamp(2_000_000_000_000)).await;
        f.store
            .prune_audit(Timestamp(NOW.0 + 1), key())
            .await
            .unwrap();
        assert!(f.store.verify_audit(key()).await.unwrap().intact);

        // Someone removes record 3 and moves the checkpoint over it: without the key
        // the signature cannot follow.
        let rec3 = all(&*f.store).await.remove(0);
        f.edit(&format!(
                "DELETE FROM audit WHERE seq = 3; UPDATE audit_checkpoint SET seq = 3, hash = '{}'",
                rec3.hash
            ),
        ).await;
        let v = f.store.verify_audit(key()).await.unwrap();
        assert!(!v.intact, "{v:?}");
        assert!(v.problem.unwrap().contains("checkpoint"));
        // And a checkpoint checked with another key does not hold either.
        submit_and_cancel(&*f.store, ci(), NOW).await;
        f.store
            .prune_audit(Timestamp(NOW.0 + 1), key())
            .await
            .unwrap();
        let v = f
            .store
            .verify_audit(AuditKey::new(*b"another key"))
            .await
            .unwrap();
        assert!(!v.intact);
    }
}

both! {
    async fn tokens_are_kept_by_hash_and_their_changes_recorded(f: Fixture) {
        let f = f.fresh().await;
        let me = Actor::Socket {
            uid: 1000,
            pid: Some(1),
            process: Some("meanwhile".into()),
            session: None,
            task: None,
        };
        acting(me, async {
            f.store
                .add_token("ci", &"ab".repeat(32), NOW)
                .await
                .unwrap();
            let again = f.store.add_token("ci", &"cd".repeat(32), NOW).await;
            assert!(again.unwrap_err().to_string().contains("exists"));
            assert_eq!(f.store.tokens().await.unwrap()[0].hash, "ab".repeat(32));
            f.store.remove_token("ci").await.unwrap();
            let e = f.store.remove_token("ci").await.unwrap_err();
            assert!(e.to_string().contains("no token named \"ci\""), "{e}");
        })
        .await;
        assert!(f.store.tokens().await.unwrap().is_empty());
        let records = all(&*f.store).await;
        let seen: Vec<(&str, &str)> = records
            .iter()
            .map(|r| (r.who.as_str(), r.action.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("uid 1000 (meanwhile)", "token_added"),
                ("uid 1000 (meanwhile)", "token_removed")
            ]
        );
        assert!(f.store.verify_audit(key()).await.unwrap().intact);
    }
}

both! {
    async fn a_claim_made_with_a_submit_is_meanwhiles_own_doing(f: Fixture) {
        let spec = TaskSpec::shell("true").validate().unwrap();
        // The actor is read where the write is asked for, inside the scope.
        let done = acting(ci(), async {
            f.store
                .submit_and_claim(
                    vec![NewTask::new(spec, NOW)],
                    Some(crate::support::claim_req(1)),
                )
                .await
        })
        .await
        .unwrap();
        let id = done.submitted[0].as_ref().unwrap().id();
        assert_eq!(done.claim.unwrap().unwrap().tasks.len(), 1);
        let seen: Vec<(String, String, String)> = all(&*f.store)
            .await
            .into_iter()
            .map(|r| (r.who, r.action, r.subject))
            .collect();
        let task = format!("task {id}");
        assert_eq!(
            seen,
            vec![
                ("token ci".to_string(), "submitted".to_string(), task.clone()),
                ("meanwhile".to_string(), "started".to_string(), task),
            ]
        );
        let v = f.store.verify_audit(key()).await.unwrap();
        assert!(v.intact, "{v:?}");
        assert_eq!(v.records, 2);
    }
}

both! {
    /// An attempt's end that ends its task is one record with the task's end; one
    /// that schedules a retry is a record of its own, and so is the task's end.
    async fn an_end_is_one_record_unless_a_retry_follows(f: Fixture) {
        use crate::support::{claim_req, end};
        use meanwhile_core::{AttemptOutcome, RetryPolicy};
        let mut spec = TaskSpec::shell("flaky");
        spec.retry = RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        };
        let new = NewTask::new(spec.validate().unwrap(), NOW);
        let id = f.store.submit(vec![new]).await.unwrap()[0].as_ref().unwrap().id();
        f.store.claim(claim_req(1)).await.unwrap();
        let mut failed = end(id, 1, AttemptOutcome::Exited { code: 3 });
        failed.retry_at = NOW;
        f.store.finish_attempt(failed).await.unwrap().unwrap();
        f.store.claim(claim_req(1)).await.unwrap();
        let ok = end(id, 2, AttemptOutcome::Exited { code: 0 });
        f.store.finish_attempt(ok).await.unwrap().unwrap();
        let seen: Vec<(String, String)> = all(&*f.store)
            .await
            .into_iter()
            .map(|r| (r.action, r.summary))
            .collect();
        let expected = [
            ("submitted", "submitted shell task \"flaky\" to queue default".to_string()),
            ("started", "attempt 1 started on n1".to_string()),
            (
                "attempt_ended",
                format!("attempt 1 exited, exit code 3; task now pending, retry scheduled at {}", NOW.0),
            ),
            ("started", "attempt 2 started on n1".to_string()),
            ("finished", "attempt 2 exited; ended succeeded, exit code 0".to_string()),
        ];
        let expected: Vec<(String, String)> =
            expected.into_iter().map(|(a, s)| (a.to_string(), s)).collect();
        assert_eq!(seen, expected);
        assert!(f.store.verify_audit(key()).await.unwrap().intact);
    }
}

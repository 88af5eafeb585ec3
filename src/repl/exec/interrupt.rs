//! Ctrl-C while statements run: the cancel-aware wait around a running
//! statement (the listener itself is `sigint.rs`).

use std::cell::Cell;
use std::future::Future;

use super::session::{CANCEL_FALLBACK_AFTER, Link};
use super::sigint::Interrupts;

impl super::Runner {
    /// After a [`cancellable`] wait: remember a Ctrl-C for the script, and
    /// give up a session whose statement may still be running.
    pub(super) fn settle<T>(
        &mut self,
        cancelled: &Cell<bool>,
        result: Option<T>,
    ) -> Result<T, super::StmtError> {
        if cancelled.get() {
            self.interrupts.mark_cancelled();
        }
        result.ok_or_else(|| {
            self.link.drop_session();
            super::StmtError::Abandoned
        })
    }
}

/// Wait for `work` (a statement, with its Describe) while turning Ctrl-C
/// into a cancel request for the session's backend. `cancelled` is set as
/// soon as a cancel was asked for, so `work` can skip what it has not
/// started. At the prompt Ctrl-C again sends another cancel once this one
/// is out; in a script a second Ctrl-C stops the wait at once: `None`.
/// (Not listening, `interrupts.next()` never fires.)
///
/// When the statement still runs [`CANCEL_FALLBACK_AFTER`] after the
/// cancel request went out — RDS Proxy and other pooling proxies do not
/// always route one to the backend — it is cancelled once more with
/// `pg_cancel_backend` on the session's backend pid, from a second
/// connection, and we say so.
pub(super) async fn cancellable<T>(
    work: impl Future<Output = T>,
    cancelled: &Cell<bool>,
    interrupts: &mut Interrupts,
    link: &Link,
    cancel: tokio_postgres::CancelToken,
    interactive: bool,
    statement: usize,
) -> Option<T> {
    let mut work = std::pin::pin!(work);
    // When to fall back to pg_cancel_backend, once a cancel request is out.
    let mut fallback_at: Option<tokio::time::Instant> = None;
    loop {
        let at = fallback_at;
        let fallback = async move {
            match at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = &mut work => return Some(result),
            () = fallback => {
                fallback_at = None;
                let Some(pid) = link.pid() else { continue };
                let request = link.cancel_through_second_connection(pid);
                let done = if interactive {
                    Some(request.await)
                } else {
                    tokio::select! {
                        done = request => Some(done),
                        () = interrupts.next() => None,
                    }
                };
                let secs = CANCEL_FALLBACK_AFTER.as_secs();
                match done {
                    Some(Ok(true)) => eprintln!(
                        "{}the cancel request did not stop the statement within {secs} s (a pooling proxy may not have passed it on); cancelled it with pg_cancel_backend({pid}) from a second connection",
                        prefix(interactive)
                    ),
                    Some(Ok(false)) => eprintln!(
                        "{}the cancel request did not stop the statement within {secs} s, and pg_cancel_backend({pid}) from a second connection found nothing to cancel",
                        prefix(interactive)
                    ),
                    Some(Err(err)) => eprintln!(
                        "{}the cancel request did not stop the statement within {secs} s, and cancelling it from a second connection failed: {}",
                        prefix(interactive),
                        crate::error::render(&err).trim_start_matches("rdsiam: ")
                    ),
                    None => return None,
                }
            }
            () = interrupts.next() => {
                if !interactive && cancelled.get() {
                    return None;
                }
                cancelled.set(true);
                if interactive {
                    eprintln!("cancelling the query…");
                } else {
                    eprintln!(
                        "rdsiam: Ctrl-C: cancelling statement {statement} (Ctrl-C again stops without waiting)"
                    );
                }
                let request = link.cancel(&cancel);
                let sent = if interactive {
                    Some(request.await)
                } else {
                    tokio::select! {
                        sent = request => Some(sent),
                        () = interrupts.next() => None,
                    }
                };
                match sent {
                    Some(Ok(())) => {}
                    Some(Err(err)) => eprintln!("{}", crate::error::render(&err)),
                    None => return None,
                }
                fallback_at = Some(tokio::time::Instant::now() + CANCEL_FALLBACK_AFTER);
            }
        }
    }
}

fn prefix(interactive: bool) -> &'static str {
    if interactive { "" } else { "rdsiam: " }
}

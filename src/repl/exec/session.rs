//! The session behind the runner: one live connection at a time, lost and
//! reopened with a fresh token, and the cancel request for it.

use std::time::Duration;

use anyhow::Result;
use tokio_postgres::SimpleQueryMessage;

use crate::connect::{Connector, Session};
use crate::session::Resolved;
use crate::tap::TxStatus;

use super::StmtError;
use super::sigint::Interrupts;

/// What to reach and how, plus the session now open (if any).
pub(super) struct Link {
    connector: Connector,
    resolved: Resolved,
    dbname: Option<String>,
    session: Option<Session>,
    /// The session's backend process, for `pg_cancel_backend` when a
    /// cancel request does not arrive.
    pid: Option<i32>,
    /// A session existed and was lost: the next connect says what that cost.
    lost: bool,
}

impl Link {
    pub(super) fn new(connector: Connector, resolved: Resolved, dbname: Option<String>) -> Link {
        Link {
            connector,
            resolved,
            dbname,
            session: None,
            pid: None,
            lost: false,
        }
    }

    pub(super) fn user(&self) -> &str {
        &self.resolved.target.user
    }

    /// The database name as the server sees it (default: the user's name).
    pub(super) fn database(&self) -> &str {
        self.dbname.as_deref().unwrap_or(&self.resolved.target.user)
    }

    /// Log in now (a fresh token), so a bad login fails before any input.
    pub(super) async fn connect(&mut self) -> Result<()> {
        let session = open(&self.connector, &self.resolved, self.dbname.as_deref()).await?;
        self.adopt(session).await
    }

    /// Take a fresh session: notices on stderr from now on, and its
    /// backend's pid asked for while it is idle (a running statement can
    /// only be cancelled by pid from elsewhere, and behind a pooling proxy
    /// the cancel key may not name the backend).
    ///
    /// No answer within the connect timeout is a server silent after login,
    /// as `check` says: waiting on it would hang a script forever (issue 24).
    async fn adopt(&mut self, session: Session) -> Result<()> {
        session.watch.print_notices(true);
        let asked = session.client.simple_query("SELECT pg_backend_pid()");
        self.pid = match tokio::time::timeout(self.connector.timeout, asked).await {
            Ok(Ok(messages)) => messages.iter().find_map(|m| match m {
                SimpleQueryMessage::Row(row) => row.get(0).and_then(|v| v.parse().ok()),
                _ => None,
            }),
            // Without it, Ctrl-C has only the cancel request.
            Ok(Err(_)) => None,
            Err(_) => {
                return Err(crate::error::Failure::network(format!(
                    "the server went silent after login: no answer to a first query within {}s",
                    self.connector.timeout.as_secs()
                ))
                .hint("the login worked; the server or a proxy stopped answering. Check the endpoint's status (`rdsiam list`) and try again, or raise --connect-timeout")
                .into());
            }
        };
        self.session = Some(session);
        Ok(())
    }

    /// Whether `standard_conforming_strings` is on in the session (on
    /// when there is none: the default, and what the next one will say).
    pub(super) fn std_strings(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.watch.std_strings())
    }

    pub(super) fn tx_status(&self) -> TxStatus {
        self.session
            .as_ref()
            .map_or(TxStatus::Unknown, |s| s.watch.tx_status())
    }

    /// The session's backend pid, when known.
    pub(super) fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// Cancel backend `pid` from a second connection (fresh token), for
    /// when the cancel request did not take effect: a pooling proxy may not
    /// route it to the backend. `Ok(false)`: nothing was cancelled.
    pub(super) async fn cancel_through_second_connection(&self, pid: i32) -> Result<bool> {
        let session = open(&self.connector, &self.resolved, self.dbname.as_deref()).await?;
        let sql = format!("SELECT pg_cancel_backend({pid})");
        let query = session.client.simple_query(&sql);
        let messages = tokio::time::timeout(self.connector.timeout, query)
            .await
            .map_err(|_| anyhow::anyhow!("pg_cancel_backend({pid}) got no answer in time"))??;
        Ok(messages.iter().any(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0) == Some("t"),
            _ => false,
        }))
    }

    /// The live session's client. Call after [`Link::ensure`] succeeded.
    pub(super) fn client(&self) -> Option<&tokio_postgres::Client> {
        self.session.as_ref().map(|s| &s.client)
    }

    /// Whether the session is gone or going (its client or task closed).
    pub(super) fn is_closed(&self) -> bool {
        self.session
            .as_ref()
            .is_none_or(|s| s.client.is_closed() || s.task.is_finished())
    }

    /// After a server error, let the connection read the ReadyForQuery
    /// behind it, so the prompt's `!` and the next statement's string
    /// setting are the server's current ones. Bounded: a FATAL error has
    /// none behind it, and a stalled link must not hang the prompt.
    pub(super) async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        if let Some(session) = &self.session {
            session
                .watch
                .wait_settled(|| self.is_closed(), deadline)
                .await;
        }
    }

    /// Forget the session: it broke, or it may still be running a statement
    /// we stopped waiting for, so it is not to be trusted with another one.
    pub(super) fn drop_session(&mut self) {
        self.session = None;
        self.pid = None;
        self.lost = true;
    }

    /// Make sure there is a live session, reconnecting (new token) when the
    /// last one died. At the prompt Ctrl-C abandons a reconnect that hangs
    /// (a stalled network waits for the connect timeout otherwise); in a
    /// script a lost session stops the script instead.
    pub(super) async fn ensure(
        &mut self,
        interactive: bool,
        interrupts: &mut Interrupts,
    ) -> Result<(), StmtError> {
        // Let the connection task see an EOF that arrived while we waited
        // at the prompt (the runtime only runs inside block_on).
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        if self.session.is_some() && self.is_closed() {
            self.drop_session();
            super::note(
                interactive,
                "the connection to the server was lost; reconnecting with a fresh token",
            );
        }
        if self.session.is_some() {
            return Ok(());
        }
        if !interactive && self.lost {
            return Err(StmtError::Lost(
                "the connection to the server was lost; stopping so the rest of the script does not run outside its session".to_owned(),
            ));
        }
        // After a lost session (a failover, most likely) the endpoint may
        // lead nowhere for a while: keep trying, the name resolved again
        // each time, before giving up (issue 19).
        let patience = if self.lost {
            RECONNECT_PATIENCE
        } else {
            Duration::ZERO
        };
        let connect = open_patiently(
            &self.connector,
            &self.resolved,
            self.dbname.as_deref(),
            patience,
        );
        let connected = if interactive {
            tokio::select! {
                result = connect => Some(result),
                () = interrupts.next() => None,
            }
        } else {
            Some(connect.await)
        };
        match connected {
            Some(Ok(session)) => {
                if let Err(err) = self.adopt(session).await {
                    return Err(StmtError::NotSent(crate::error::render(&err)));
                }
                if std::mem::take(&mut self.lost) {
                    super::note(
                        interactive,
                        "reconnected; session state was lost: any open transaction was rolled back, SET values and temporary tables are gone",
                    );
                }
                Ok(())
            }
            Some(Err(err)) => Err(StmtError::NotSent(format!(
                "{}\nrdsiam: not connected, so the statement was not sent",
                crate::error::render(&err)
            ))),
            None => {
                interrupts.mark_cancelled();
                Err(StmtError::NotSent(
                    "rdsiam: reconnecting interrupted by Ctrl-C; the statement was not sent"
                        .to_owned(),
                ))
            }
        }
    }

    /// Ask the server to cancel what the session runs (see
    /// [`Connector::cancel`]).
    pub(super) async fn cancel(&self, token: &tokio_postgres::CancelToken) -> Result<()> {
        self.connector.cancel(&self.resolved, token).await
    }

    /// `\conninfo`.
    pub(super) fn conninfo(&self) -> String {
        let e = &self.resolved.endpoint;
        let via = self
            .connector
            .via
            .as_ref()
            .map(|v| format!(" via {v}"))
            .unwrap_or_default();
        let state = match &self.session {
            Some(s) if !s.client.is_closed() => "connected",
            _ => "not connected (the next statement reconnects)",
        };
        format!(
            "{state}: database \"{}\" as user \"{}\" at {}:{}{via} ({} {}, region {}), TLS sslmode {}, IAM token minted per connection\n",
            self.database(),
            self.user(),
            e.host,
            e.port,
            e.kind,
            e.name,
            self.resolved.aws.region,
            self.connector.sslmode.as_str(),
        )
    }
}

/// A new session (see [`Connector::connect`]).
async fn open(connector: &Connector, resolved: &Resolved, dbname: Option<&str>) -> Result<Session> {
    connector.connect(resolved, dbname).await
}

/// How long a reconnect after a lost session keeps trying through network
/// failures (what a failover looks like), as the proxy's --failover-timeout.
const RECONNECT_PATIENCE: Duration = Duration::from_secs(30);

/// A network failure a failover can cause (refused, dropped, timed out,
/// not accepting connections); a certificate problem is not one.
fn failover_like(failure: &crate::error::Failure) -> bool {
    failure.kind == crate::error::Kind::Network
        && failure.stage != Some(crate::error::Stage::Certificate)
}

/// [`open`], retried with backoff (0.1 s doubling to 1 s) for up to
/// `patience` while the failure is [`failover_like`], not a refusal.
async fn open_patiently(
    connector: &Connector,
    resolved: &Resolved,
    dbname: Option<&str>,
    patience: Duration,
) -> Result<Session> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut backoff = Duration::from_millis(100);
    loop {
        match open(connector, resolved, dbname).await {
            Err(err)
                if tokio::time::Instant::now() + backoff < deadline
                    && err
                        .downcast_ref::<crate::error::Failure>()
                        .is_some_and(failover_like) =>
            {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            result => return result,
        }
    }
}

/// How long a cancel request may take to stop a statement before the
/// second connection's `pg_cancel_backend` does it.
pub(super) const CANCEL_FALLBACK_AFTER: Duration = Duration::from_secs(2);

//! The session behind the runner: one live connection at a time, lost and
//! reopened with a fresh token, and the cancel request for it.

use anyhow::Result;

use crate::commands::Resolved;
use crate::connect::{Connector, Session};

use super::StmtError;
use super::interrupt::Interrupts;

/// What to reach and how, plus the session now open (if any).
pub(super) struct Link {
    connector: Connector,
    resolved: Resolved,
    dbname: Option<String>,
    session: Option<Session>,
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
        let session = self
            .connector
            .connect(&self.resolved, self.dbname.as_deref())
            .await?;
        self.session = Some(session);
        Ok(())
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

    /// Forget the session: it broke, or it may still be running a statement
    /// we stopped waiting for, so it is not to be trusted with another one.
    pub(super) fn drop_session(&mut self) {
        self.session = None;
        self.lost = true;
    }

    /// Make sure there is a live session, reconnecting (new token) when the
    /// last one died. At the prompt Ctrl-C abandons a reconnect that hangs
    /// (a stalled network waits for the connect timeout otherwise); in a
    /// script a lost session stops the script instead. `Ok(true)`: a lost
    /// session was replaced, so its state (transaction, SETs) is gone.
    pub(super) async fn ensure(
        &mut self,
        interactive: bool,
        interrupts: &mut Interrupts,
    ) -> Result<bool, StmtError> {
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
            return Ok(false);
        }
        if !interactive && self.lost {
            return Err(StmtError::Lost(
                "the connection to the server was lost; stopping so the rest of the script does not run outside its session".to_owned(),
            ));
        }
        let connect = self
            .connector
            .connect(&self.resolved, self.dbname.as_deref());
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
                self.session = Some(session);
                if std::mem::take(&mut self.lost) {
                    super::note(
                        interactive,
                        "reconnected; session state was lost: any open transaction was rolled back, SET values and temporary tables are gone",
                    );
                    return Ok(true);
                }
                Ok(false)
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

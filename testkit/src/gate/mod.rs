//! The IAM gate: a stand-in for RDS Proxy in front of the throwaway PostgreSQL.
//!
//! rdsiam's whole job is to produce a token that RDS accepts and to connect with it, so the
//! tests need something that checks tokens the way RDS does without reaching AWS. The gate
//! speaks the PostgreSQL v3 wire protocol (framed by hand, no PostgreSQL crate, so it can
//! misbehave on purpose), insists on TLS like RDS Proxy does, asks for a cleartext password,
//! and verifies that password as a SigV4 presigned `rds-db:connect` URL with its own
//! implementation ([`verify_token`], [`sign_token`]) — a second implementation independent of
//! any AWS library, so a shared misunderstanding can't make both sides agree on a wrong token.
//!
//! A good token gets a TLS session to the real PostgreSQL (which trusts the gate) and the two
//! streams are spliced, so everything after authentication is the real server's. A bad one gets
//! the exact answer RDS gives (`FATAL 28P01 PAM authentication failed for user "…"`). Like an
//! RDS instance with IAM auth, a login role that doesn't exist or isn't a member of `rds_iam`
//! gets that same answer (the gate asks with one `SELECT pg_has_role('rds_iam', 'MEMBER')` in
//! the fresh session before handing it over, so that query is the session's first). Each verdict is recorded as one line in [`Gate::events`] (never the
//! token) so tests can tell *why* the gate said no.
//!
//! The gate runs on its own thread with its own tokio runtime so plain synchronous `#[test]`s
//! (and the sandbox binary) can use it; it stops when dropped.
//!
//! One file per job, so each can be reviewed alone:
//! - `listener`: the TLS listener, the per-connection session and splice, fault injection;
//! - `wire`: the few PostgreSQL v3 messages the gate frames by hand;
//! - `cluster`: a writer and a hot-standby reader behind one gate, and the failover switch;
//! - `sigv4`: the token signer and verifier, and the calendar maths behind `X-Amz-Date`.

pub mod cluster;
mod listener;
mod sigv4;
mod wire;

pub use cluster::{Cluster, Failover, FailoverTimes, OldWriter};
pub use listener::{Fault, Gate, GateConfig};
pub use sigv4::{sign_token, verify_token};

/// A well-known fake access key id (from AWS's own documentation examples).
pub const TEST_ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
/// The fake secret that goes with [`TEST_ACCESS_KEY_ID`].
pub const TEST_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// The region [`GateConfig::new`] uses.
pub const TEST_REGION: &str = "us-east-1";
/// An RDS Proxy-like endpoint name, for tests that want a realistic host in the token.
pub const PROXY_ENDPOINT_HOST: &str =
    "postgresqlproxy.proxy-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com";

#[cfg(test)]
mod tests;

//! Test-only stand-ins for the parts of AWS that tests can't reach.
//!
//! - [`pg`]: a throwaway PostgreSQL server per test run.
//! - [`ca`]: a test certificate authority made at start-up.
//! - [`creds`]: the container credentials endpoint and STS web identity, short-lived.
//! - [`gate`]: the IAM gate, which plays RDS Proxy in front of [`pg`].
//! - [`mariadb`]: a throwaway MariaDB whose IAM users the server checks (PAM → SigV4).
//! - [`pty`]: a pseudo-terminal for driving interactive programs as a person would.
//! - [`rdsapi`]: a local RDS (and STS) Query API for the Describe calls.
//! - [`sandbox`]: all of the above as the article's setup, for the `rdsiam-sandbox` binary.

pub mod ca;
pub mod creds;
pub mod gate;
pub mod mariadb;
pub mod pg;
pub mod pty;
pub mod rdsapi;
pub mod sandbox;

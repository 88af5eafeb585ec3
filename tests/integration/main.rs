//! One integration-test binary (links once): the real `rdsiam` binary against
//! the testkit's stand-ins for AWS and a real PostgreSQL.

mod check;
mod completions;
mod config;
mod db;
mod proxy;
mod psql;
mod resolve;
mod run;
mod sql;
mod support;
mod token;

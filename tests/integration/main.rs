//! One integration-test binary (links once): the real `rdsiam` binary against
//! the testkit's stand-ins for AWS and a real PostgreSQL.

mod adversarial;
mod check;
mod completions;
mod config;
mod contract;
mod creds;
mod db;
mod doctor;
mod failover;
mod hardening;
mod layers;
mod mysql;
mod mysql_server;
mod pool;
mod proxy;
mod proxy_security;
mod psql;
mod resolve;
mod run;
mod sidecar;
mod sql;
mod sql_compat;
mod support;
mod token;
mod usage_first;

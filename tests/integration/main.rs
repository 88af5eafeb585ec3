//! One integration-test binary (links once): the real `rdsiam` binary against
//! the testkit's stand-ins for AWS and a real PostgreSQL.

mod check;
mod completions;
mod config;
mod contract;
mod db;
mod doctor;
mod hardening;
mod layers;
mod mysql;
mod mysql_server;
mod proxy;
mod psql;
mod resolve;
mod run;
mod sql;
mod sql_compat;
mod support;
mod token;
mod usage_first;

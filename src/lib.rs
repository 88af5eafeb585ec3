//! rdsiam: reach AWS RDS / Aurora PostgreSQL with IAM authentication.
//!
//! The flow (DESIGN.md): flags → [`target::Target`] → RDS API →
//! [`endpoint::Endpoint`] → SigV4 presign → [`token::Token`] → print, psql,
//! or a TLS connection. Each step is one module.

pub mod aws;
pub mod bounded;
pub mod ca;
pub mod child;
pub mod cli;
pub mod commands;
pub mod config;
pub mod connect;
pub mod credproc;
pub mod dial;
pub mod doctor;
pub mod endpoint;
pub mod engine;
pub mod error;
pub mod explain;
pub mod files;
pub mod flags;
pub mod frames;
pub mod hardening;
pub mod mysql;
pub mod output;
pub mod pgenv;
pub mod proxy;
pub mod psqlargs;
pub mod repl;
pub mod session;
pub mod tap;
pub mod target;
pub mod tls;
pub mod token;

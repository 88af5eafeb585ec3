//! One module per subcommand, each with a `run`; the shared steps from a
//! [`Target`] to an endpoint and a token live here.

mod check;
mod completions;
mod list;
mod proxy;
mod psql;
mod run;
mod sql;
mod targets;
mod token;

use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::aws::{self, Aws};
use crate::cli::{Cli, Command};
use crate::endpoint::{self, Endpoint};
use crate::output::warn;
use crate::target::{Selector, Target};
use crate::token::{self as iam_token, Token, TokenRequest};

/// Run the parsed command; the `Ok` value is the process exit code.
pub fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Token(args) => token::run(args),
        Command::Check(args) => check::run(args),
        Command::List(args) => list::run(args),
        Command::Psql(args) => psql::run(args),
        Command::Sql(args) => sql::run(args),
        Command::Proxy(args) => proxy::run(args),
        Command::Run(args) => run::run(args),
        Command::Targets(args) => targets::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Man => completions::man(),
    }
}

/// A current-thread runtime, built only by commands that touch the network.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// A target with its AWS side resolved: credentials, region, endpoint.
pub struct Resolved {
    pub target: Target,
    pub aws: Aws,
    pub endpoint: Endpoint,
}

impl Resolved {
    /// Resolve without a runtime when nothing needs the network: `--host`
    /// with keys and region in the environment.
    pub fn local(target: &Target) -> Option<Resolved> {
        let Selector::Host(host) = &target.selector else {
            return None;
        };
        let aws = aws::from_env(&target.aws)?;
        Some(Resolved {
            endpoint: Endpoint::host(host, target.port),
            target: target.clone(),
            aws,
        })
    }

    /// Resolve through the SDK's providers and the RDS API.
    pub async fn load(target: &Target) -> Result<Resolved> {
        let aws = aws::load(&target.aws).await?;
        let endpoint = match &target.selector {
            Selector::Host(host) => Endpoint::host(host, target.port),
            selector => endpoint::resolve(&aws.rds()?, selector, target.port).await?,
        };
        if endpoint.iam == Some(false) {
            warn(&format!(
                "IAM database authentication is off on {} `{}`; the database will refuse this token\n  turn it on with: {}",
                endpoint.kind,
                endpoint.name,
                endpoint.enable_iam_hint()
            ));
        }
        Ok(Resolved {
            target: target.clone(),
            aws,
            endpoint,
        })
    }

    /// A fresh token for this endpoint, signed now.
    pub fn mint(&self) -> Result<Token> {
        iam_token::generate(
            &TokenRequest {
                host: &self.endpoint.host,
                port: self.endpoint.port,
                user: &self.target.user,
                region: &self.aws.region,
            },
            &self.aws.credentials(),
            SystemTime::now(),
        )
    }
}

/// Resolve `target`, on the fast path when possible.
pub(crate) fn resolve_blocking(target: &Target) -> Result<Resolved> {
    if let Some(resolved) = Resolved::local(target) {
        return Ok(resolved);
    }
    runtime()?.block_on(Resolved::load(target))
}

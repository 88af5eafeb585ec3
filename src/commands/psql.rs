//! `rdsiam psql`: hand psql a fresh token the safe way. The token goes in
//! `PGPASSWORD` (never argv, never printed), and we exec psql so signals and
//! the exit status are psql's own.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::cli::PsqlArgs;
use crate::engine::Engine;
use crate::error::{Failure, Kind};
use crate::output::{print, shell_quote};
use crate::pgenv::{self, libpq_env};
use crate::target::Target;

use super::plan::planned;
use super::resolve_blocking;

pub fn run(args: PsqlArgs) -> Result<u8> {
    if args.long {
        return long(args);
    }
    let (target, conn) = Target::with_conn(&args.target, &args.conn)?;
    target.require_engine(Engine::Postgres, "psql")?;
    crate::psqlargs::check(&args.psql_args)?;
    let psql = psql_path(&args)?;
    let resolved = resolve_blocking(&target)?;
    resolved.require(Engine::Postgres, "psql")?;
    let env = libpq_env(&resolved, &conn)?;

    if args.print_env {
        let mut text: String = env
            .iter()
            .map(|(k, v)| format!("{k}={}\n", shell_quote(v)))
            .collect();
        text.push_str("PGPASSWORD='<IAM token, valid 15 minutes>'\n");
        text.push_str(&format!("exec {}", shell_quote(&psql.to_string_lossy())));
        for arg in &args.psql_args {
            text.push(' ');
            text.push_str(&shell_quote(&arg.to_string_lossy()));
        }
        text.push('\n');
        print(&text)?;
        return Ok(0);
    }

    let token = resolved.mint()?;
    let mut command = Command::new(&psql);
    command.args(&args.psql_args);
    for name in pgenv::MANAGED {
        command.env_remove(name);
    }
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    command.env("PGPASSWORD", token.value.expose());
    exec(command, &psql)
}

/// `--long`: psql under `rdsiam run`'s private proxy, so `\c` works past
/// 15 minutes. The target is planned once, as `run` plans it (a bare RDS
/// name works too), and handed over typed.
fn long(args: PsqlArgs) -> Result<u8> {
    let (planned, bare) = planned(&args.target, &args.conn, args.target.target.as_deref())?;
    planned.target().require_engine(Engine::Postgres, "psql")?;
    crate::psqlargs::check(&args.psql_args)?;
    let psql = psql_path(&args)?;
    let mut command = vec![psql.into_os_string()];
    command.extend(args.psql_args);
    super::run::supervised(super::run::RunPlan {
        planned,
        bare,
        max_connections: 1000,
        pool: None,
        failover: crate::proxy::FailoverSettings {
            expect_writer: false,
            failover_timeout: crate::proxy::DEFAULT_FAILOVER_TIMEOUT,
            login_timeout: crate::proxy::DEFAULT_LOGIN_TIMEOUT,
        },
        command,
    })
}

/// `--psql`, else `RDSIAM_PSQL` (read here rather than by clap, which
/// refuses an empty value; empty means unset), else `psql` on PATH.
fn psql_path(args: &PsqlArgs) -> Result<PathBuf> {
    let psql = args
        .psql
        .clone()
        .or_else(|| std::env::var_os("RDSIAM_PSQL").map(PathBuf::from));
    find_psql(psql.as_deref())
}

const INSTALL_HINT: &str = "install psql: Debian/Ubuntu `sudo apt-get install postgresql-client`, macOS `brew install libpq && brew link --force libpq`, Amazon Linux `sudo dnf install postgresql16`; or pass --psql PATH (RDSIAM_PSQL), or use `rdsiam sql`";

/// The psql to run: `--psql`/`RDSIAM_PSQL`, else `psql` on PATH.
fn find_psql(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        if path.components().count() > 1 {
            return if is_executable(path) {
                Ok(path.to_owned())
            } else {
                Err(Failure::new(
                    Kind::Other,
                    format!("--psql {} is not an executable file", path.display()),
                )
                .hint(INSTALL_HINT)
                .into())
            };
        }
        return search_path(path.as_os_str()).ok_or_else(|| {
            Failure::new(
                Kind::Other,
                format!("--psql `{}` is not on PATH", path.display()),
            )
            .hint(INSTALL_HINT)
            .into()
        });
    }
    search_path(&OsString::from("psql")).ok_or_else(|| {
        Failure::new(Kind::Other, "psql is not installed (not found on PATH)")
            .hint(INSTALL_HINT)
            .into()
    })
}

fn search_path(name: &std::ffi::OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// Become psql. Only returns if exec itself failed.
#[cfg(unix)]
fn exec(mut command: Command, psql: &Path) -> Result<u8> {
    use std::os::unix::process::CommandExt;
    let err = command.exec();
    Err(
        Failure::new(Kind::Other, format!("cannot run {}: {err}", psql.display()))
            .hint(INSTALL_HINT)
            .into(),
    )
}

/// Without exec, run psql as a child and pass its status through.
#[cfg(not(unix))]
fn exec(mut command: Command, psql: &Path) -> Result<u8> {
    let status = command.status().map_err(|err| {
        Failure::new(Kind::Other, format!("cannot run {}: {err}", psql.display()))
            .hint(INSTALL_HINT)
    })?;
    Ok(status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(1))
}

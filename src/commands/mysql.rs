//! `rdsiam mysql`: become the `mysql`/`mariadb` client, logged in with a
//! fresh token over verified TLS, for MySQL and MariaDB targets (what
//! `rdsiam psql` is to PostgreSQL). The client's exit status is ours.

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::cli::MysqlArgs;
use crate::engine::Engine;
use crate::error::{Failure, Kind};
use crate::mysql::client::{self, Flavor, Plan};
use crate::target::Target;

use super::resolve_blocking;

const INSTALL_HINT: &str = "install a client: Debian/Ubuntu `sudo apt-get install mariadb-client` (or mysql-client), macOS `brew install mysql-client`; or pass --mysql PATH (RDSIAM_MYSQL)";

/// Variables that would change where or how the client logs in, or hand it
/// another password.
const MANAGED_ENV: &[&str] = &[
    "MYSQL_PWD",
    "MYSQL_HOST",
    "MYSQL_TCP_PORT",
    "MYSQL_UNIX_PORT",
    "MYSQL_TEST_LOGIN_FILE",
    "MARIADB_HOST",
    "MARIADB_UNIX_PORT",
];

pub fn run(args: MysqlArgs) -> Result<u8> {
    let (target, conn) = Target::with_conn(&args.target, &args.conn)?;
    target.require_engine(Engine::Mysql, "mysql")?;
    client::check_args(&args.mysql_args)?;
    let explicit = args
        .mysql
        .clone()
        .or_else(|| std::env::var_os("RDSIAM_MYSQL").map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty());
    let program = find_client(explicit.as_deref())?;
    let flavor = flavor(&program)?;
    let resolved = resolve_blocking(&target)?;
    resolved.require(Engine::Mysql, "mysql")?;
    let endpoint = &resolved.endpoint;
    let ca = conn.roots.file()?;
    let (host, port) = match &conn.via {
        Some(via) => {
            // The clients verify the name they dial; there is no libpq
            // `hostaddr`. So through a tunnel the certificate must name the
            // tunnel's address, which RDS's never do: that fails closed,
            // never sending the token to an unverified server.
            if conn.sslmode != crate::tls::SslMode::Require {
                crate::output::warn(&format!(
                    "with --via the mysql client verifies the certificate against {} (the address it dials), not {}; RDS certificates do not name a tunnel's address, so expect a certificate error (`rdsiam check --via` verifies the real name)",
                    via.host, endpoint.host
                ));
            }
            (via.host.as_str(), via.port)
        }
        None => (endpoint.host.as_str(), endpoint.port),
    };
    let plan = Plan {
        flavor,
        host,
        port,
        user: &target.user,
        database: target.dbname.as_deref(),
        sslmode: conn.sslmode,
        ca_file: ca.as_os_str(),
    };
    let token = resolved.mint()?;
    let file = client::private_file(&client::option_file(token.value.expose()))?;
    let mut command = Command::new(&program);
    command.args(plan.args(&format!("/dev/fd/{}", file.as_raw_fd()))?);
    command.args(&args.mysql_args);
    for name in MANAGED_ENV {
        command.env_remove(name);
    }
    exec(command, &program)
}

/// `--mysql`/`RDSIAM_MYSQL`, else `mysql` on PATH, else `mariadb`.
fn find_client(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        let found = if path.components().count() > 1 {
            Some(path.to_owned()).filter(|p| is_executable(p))
        } else {
            search_path(path.as_os_str())
        };
        return found.ok_or_else(|| {
            Failure::new(
                Kind::Other,
                format!("--mysql {} is not an executable file", path.display()),
            )
            .hint(INSTALL_HINT)
            .into()
        });
    }
    ["mysql", "mariadb"]
        .iter()
        .find_map(|name| search_path(&OsString::from(name)))
        .ok_or_else(|| {
            Failure::new(
                Kind::Other,
                "no MySQL client is installed (neither mysql nor mariadb is on PATH)",
            )
            .hint(INSTALL_HINT)
            .into()
        })
}

/// Ask the client which it is: they spell TLS verification differently.
fn flavor(program: &Path) -> Result<Flavor> {
    let out = Command::new(program)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|err| {
            Failure::new(
                Kind::Other,
                format!("cannot run {}: {err}", program.display()),
            )
            .hint(INSTALL_HINT)
        })?;
    Ok(Flavor::from_version(&String::from_utf8_lossy(&out.stdout)))
}

fn search_path(name: &std::ffi::OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Become the client. Only returns if exec itself failed.
fn exec(mut command: Command, program: &Path) -> Result<u8> {
    use std::os::unix::process::CommandExt;
    let err = command.exec();
    Err(Failure::new(
        Kind::Other,
        format!("cannot run {}: {err}", program.display()),
    )
    .hint(INSTALL_HINT)
    .into())
}

//! What `rdsiam mysql` hands the `mysql`/`mariadb` client: host, port, user
//! and TLS verification on the command line (argv beats every option file),
//! the token in an option file only the client can read, and a check of the
//! user's own arguments.
//!
//! The token goes in an anonymous in-memory file (`memfd_create`, mode
//! 0600, inherited as fd N and named `--defaults-file=/dev/fd/N`): nothing
//! on disk to remove, nothing in argv or the environment (`MYSQL_PWD` is
//! readable through /proc/PID/environ for the process's lifetime, and
//! deprecated). A pipe would do, but a client may read its option files
//! twice, and a pipe reads once. `--defaults-file` (not `-extra-`) so that
//! no ~/.my.cnf can put back `ssl=0`, a `password=` or another host.

use std::ffi::{OsStr, OsString};

use anyhow::Result;

use crate::error::Failure;
use crate::tls::SslMode;

/// Which client: they spell TLS verification differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB's `mariadb`/`mysql` (libmariadb): `--ssl-verify-server-cert`.
    MariaDb,
    /// Oracle's `mysql`: `--ssl-mode=VERIFY_IDENTITY`, `--enable-cleartext-plugin`.
    Oracle,
}

impl Flavor {
    /// From `CLIENT --version`: MariaDB's says `MariaDB` (`mysql from 11.4.2-MariaDB`,
    /// `mysql  Ver 15.1 Distrib 10.11.6-MariaDB`); Oracle's does not.
    pub fn from_version(text: &str) -> Flavor {
        if text.contains("MariaDB") {
            Flavor::MariaDb
        } else {
            Flavor::Oracle
        }
    }
}

/// Long options (without `--`) that would change where or as whom the
/// client logs in, turn TLS or its verification off, read other option
/// files, or print the token. A user's argument naming any of them, or a
/// prefix of one (the client's getopt takes unique prefixes), is refused.
const MANAGED: &[&str] = &[
    "host",
    "port",
    "user",
    "socket",
    "password",
    "protocol",
    "pipe",
    "shared-memory-base-name",
    "ssl",
    "ssl-mode",
    "ssl-verify-server-cert",
    "ssl-ca",
    "ssl-capath",
    "ssl-crl",
    "ssl-crlpath",
    "ssl-fp",
    "ssl-fplist",
    "tls-version",
    "defaults-file",
    "defaults-extra-file",
    "defaults-group-suffix",
    "no-defaults",
    "print-defaults",
    "login-path",
    "enable-cleartext-plugin",
    "default-auth",
    "plugin-dir",
];

/// Short options with the same effect (`-h`, `-P`, `-u`, `-S`, `-p`, and
/// `-W`, a named pipe).
const MANAGED_SHORT: &[char] = &['h', 'P', 'u', 'S', 'p', 'W'];
/// Short options that take a value: what follows in the cluster is it.
const SHORT_WITH_VALUE: &[char] = &['D', 'e', 'O', 'T'];

/// Refuse arguments that would undo what rdsiam sets (exit 2).
pub fn check_args(args: &[OsString]) -> Result<()> {
    for arg in args {
        let text = arg.to_string_lossy();
        if text == "--" {
            break;
        }
        if let Some(long) = text.strip_prefix("--") {
            let name = long.split('=').next().unwrap_or_default().replace('_', "-");
            let mut bare = name.strip_prefix("loose-").unwrap_or(&name);
            for negation in ["skip-", "disable-", "enable-"] {
                bare = bare.strip_prefix(negation).unwrap_or(bare);
            }
            let bare = bare.strip_prefix("maximum-").unwrap_or(bare);
            if !bare.is_empty()
                && let Some(option) = MANAGED.iter().find(|o| o.starts_with(bare))
            {
                return Err(refused(&text, &format!("--{option}")));
            }
        } else if let Some(cluster) = text.strip_prefix('-').filter(|c| !c.is_empty()) {
            for c in cluster.chars() {
                if MANAGED_SHORT.contains(&c) {
                    return Err(refused(&text, &format!("-{c}")));
                }
                if SHORT_WITH_VALUE.contains(&c) {
                    break;
                }
            }
        }
    }
    Ok(())
}

fn refused(arg: &str, option: &str) -> anyhow::Error {
    Failure::usage(format!(
        "rdsiam mysql sets {option} itself; `{}` would change the endpoint, the user, TLS or the password",
        arg.escape_debug()
    ))
    .hint("name the target with rdsiam's own flags (--host, --port, --user, --sslmode, --ca-bundle) and pass the rest after `--`")
    .into()
}

/// The client's arguments before the user's: the option file first (the
/// client insists), then endpoint, user and TLS.
pub struct Plan<'a> {
    pub flavor: Flavor,
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub database: Option<&'a str>,
    pub sslmode: SslMode,
    pub ca_file: &'a OsStr,
}

impl Plan<'_> {
    /// `defaults` is the option file's path (`/dev/fd/N`).
    pub fn args(&self, defaults: &str) -> Result<Vec<OsString>> {
        let mut args: Vec<OsString> = vec![
            format!("--defaults-file={defaults}").into(),
            format!("--host={}", self.host).into(),
            format!("--port={}", self.port).into(),
            format!("--user={}", self.user).into(),
            // TCP even for `localhost`, which the client would take as its socket.
            "--protocol=TCP".into(),
        ];
        let mut ca = OsString::from("--ssl-ca=");
        ca.push(self.ca_file);
        match (self.flavor, self.sslmode) {
            (Flavor::MariaDb, SslMode::VerifyFull) => {
                args.extend(["--ssl".into(), "--ssl-verify-server-cert".into(), ca]);
            }
            (Flavor::MariaDb, SslMode::VerifyCa) => {
                return Err(Failure::usage(
                    "the MariaDB client cannot verify the certificate chain without the host name (--sslmode verify-ca)",
                )
                .hint("use --sslmode verify-full (the default), or Oracle's mysql client (--mysql PATH), which has VERIFY_CA")
                .into());
            }
            (Flavor::MariaDb, SslMode::Require) => args.push("--ssl".into()),
            (Flavor::Oracle, mode) => {
                let mode = match mode {
                    SslMode::VerifyFull => "VERIFY_IDENTITY",
                    SslMode::VerifyCa => "VERIFY_CA",
                    SslMode::Require => "REQUIRED",
                };
                args.push(format!("--ssl-mode={mode}").into());
                if mode != "REQUIRED" {
                    args.push(ca);
                }
                args.push("--enable-cleartext-plugin".into());
            }
        }
        if let Some(db) = self.database {
            args.push(format!("--database={db}").into());
        }
        Ok(args)
    }
}

/// The option file's text: the token and nothing else a user could want
/// to see.
pub fn option_file(token: &str) -> String {
    // The value runs to the end of the line; a token has no newline, quote
    // or `#`, but quote it anyway as the option-file grammar allows.
    format!("[client]\npassword=\"{token}\"\n")
}

/// Write `text` to an anonymous in-memory file (mode 0600) that exec'd
/// children inherit; the fd's number names it as `/dev/fd/N`.
#[cfg(target_os = "linux")]
pub fn private_file(text: &str) -> Result<std::os::fd::OwnedFd> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    use std::io::Write;
    let fd = memfd_create(c"rdsiam-mysql", MFdFlags::empty())
        .map_err(|err| anyhow::anyhow!("creating the option file (memfd_create): {err}"))?;
    nix::sys::stat::fchmod(&fd, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|err| anyhow::anyhow!("making the option file private: {err}"))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(text.as_bytes())?;
    Ok(file.into())
}

#[cfg(not(target_os = "linux"))]
pub fn private_file(_text: &str) -> Result<std::os::fd::OwnedFd> {
    Err(Failure::new(
        crate::error::Kind::Other,
        "rdsiam mysql needs Linux (memfd_create) to hand over the token privately",
    )
    .hint("use `rdsiam token` with the client's own options, or `rdsiam check`")
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[&str]) -> Result<()> {
        check_args(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn arguments_that_undo_ours_are_refused() {
        for bad in [
            "--host=x",
            "--ho=x",
            "--port",
            "--user=root",
            "--socket=/tmp/s",
            "--password",
            "--pass=x",
            "--skip-ssl",
            "--disable-ssl",
            "--ssl=0",
            "--loose-skip-ssl",
            "--ssl-mode=DISABLED",
            "--ssl-verify-server-cert=0",
            "--skip-ssl-verify-server-cert",
            "--ssl_mode=DISABLED",
            "--defaults-file=/tmp/x",
            "--no-defaults",
            "--print-defaults",
            "--protocol=socket",
            "--login-path=x",
            "-h",
            "-hx",
            "-P3307",
            "-uroot",
            "-Nuroot",
            "-p",
            "-pX",
            "-S/tmp/s",
        ] {
            let err = check(&[bad]).unwrap_err();
            assert_eq!(crate::error::exit_code(&err), 2, "{bad}");
        }
    }

    #[test]
    fn ordinary_arguments_pass() {
        for ok in [
            &["-e", "select 1"][..],
            &["-Ne", "select -h"],
            &["--execute=select 1", "-N", "-B"],
            &["--database=app", "--table"],
            &["-D", "app", "-vvv"],
            &["--", "-h"],
        ] {
            check(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
    }

    #[test]
    fn tls_flags_by_flavor() {
        let plan = |flavor, sslmode| Plan {
            flavor,
            host: "db.example",
            port: 3306,
            user: "u",
            database: Some("app"),
            sslmode,
            ca_file: OsStr::new("/ca.pem"),
        };
        let args = plan(Flavor::MariaDb, SslMode::VerifyFull)
            .args("/dev/fd/5")
            .unwrap();
        assert_eq!(args[0], "--defaults-file=/dev/fd/5");
        for want in [
            "--ssl",
            "--ssl-verify-server-cert",
            "--ssl-ca=/ca.pem",
            "--protocol=TCP",
        ] {
            assert!(args.iter().any(|a| a == want), "{want}: {args:?}");
        }
        let args = plan(Flavor::Oracle, SslMode::VerifyFull)
            .args("/dev/fd/5")
            .unwrap();
        assert!(args.iter().any(|a| a == "--ssl-mode=VERIFY_IDENTITY"));
        assert!(args.iter().any(|a| a == "--enable-cleartext-plugin"));
        assert!(
            plan(Flavor::MariaDb, SslMode::VerifyCa)
                .args("/dev/fd/5")
                .is_err()
        );
        assert_eq!(
            Flavor::from_version("mysql  Ver 15.1 Distrib 10.11.6-MariaDB"),
            Flavor::MariaDb
        );
        assert_eq!(
            Flavor::from_version("mysql  Ver 8.0.39 for Linux on x86_64"),
            Flavor::Oracle
        );
    }
}

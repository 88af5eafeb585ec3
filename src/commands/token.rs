//! `rdsiam token`: print a token (text, json or env lines for `eval`).

use anyhow::Result;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use serde::Serialize;

use crate::cli::{ConnArgs, TokenArgs, TokenOutput};
use crate::engine::Engine;
use crate::output::{print, print_json, shell_quote};
use crate::pgenv::libpq_env;
use crate::target::Target;

use super::resolve_blocking;

#[derive(Serialize)]
struct TokenJson<'a> {
    token: &'a str,
    host: &'a str,
    port: u16,
    user: &'a str,
    region: &'a str,
    expires_at: String,
}

pub fn run(args: TokenArgs) -> Result<u8> {
    // The connection settings matter only for `-o env` (sslmode, CA, via).
    let (target, conn) = Target::with_conn(&args.target, &ConnArgs::default())?;
    let resolved = resolve_blocking(&target)?;
    let token = resolved.mint()?;
    let endpoint = &resolved.endpoint;
    match args.output {
        TokenOutput::Text => print(&format!("{}\n", token.value.expose()))?,
        TokenOutput::Json => print_json(&TokenJson {
            token: token.value.expose(),
            host: &endpoint.host,
            port: endpoint.port,
            user: &target.user,
            region: &resolved.aws.region,
            expires_at: DateTime::from(token.expires_at).fmt(Format::DateTime)?,
        })?,
        TokenOutput::Env if endpoint.family == Engine::Mysql => {
            let ca = conn.roots.file()?;
            print(&crate::mysql::env_lines(
                &resolved,
                &ca.to_string_lossy(),
                token.value.expose(),
            ))?;
        }
        TokenOutput::Env => {
            let mut vars = libpq_env(&resolved, &conn)?;
            vars.push(("PGPASSWORD", token.value.expose().clone()));
            let text: String = vars
                .iter()
                .map(|(name, value)| format!("export {name}={}\n", shell_quote(value)))
                .collect();
            print(&text)?;
        }
    }
    Ok(0)
}

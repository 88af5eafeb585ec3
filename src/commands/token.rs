//! `rdsiam token`: print a token (text, json or env lines for `eval`).

use anyhow::Result;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use serde::Serialize;

use crate::ca::Roots;
use crate::cli::{TokenArgs, TokenOutput};
use crate::output::{print, print_json, shell_quote};
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
    let target = Target::from_args(&args.target)?;
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
        TokenOutput::Env => {
            let port = endpoint.port.to_string();
            let mut vars = vec![
                ("PGHOST", endpoint.host.as_str()),
                ("PGPORT", port.as_str()),
                ("PGUSER", target.user.as_str()),
            ];
            if let Some(db) = &target.dbname {
                vars.push(("PGDATABASE", db));
            }
            vars.push(("PGPASSWORD", token.value.expose()));
            vars.push(("PGSSLMODE", "verify-full"));
            // verify-full needs roots libpq can read: the user's, else ours.
            let roots = match std::env::var_os("PGSSLROOTCERT").filter(|v| !v.is_empty()) {
                Some(path) => Roots::File(path.into()),
                None => Roots::BuiltIn,
            };
            let roots = roots.file()?.to_string_lossy().into_owned();
            vars.push(("PGSSLROOTCERT", &roots));
            let text: String = vars
                .iter()
                .map(|(name, value)| format!("export {name}={}\n", shell_quote(value)))
                .collect();
            print(&text)?;
        }
    }
    Ok(0)
}

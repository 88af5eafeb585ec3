//! MySQL and MariaDB targets: the environment `rdsiam token -o env` prints,
//! a thin client for `check` and `doctor` ([`wire`]), and the arguments
//! `rdsiam mysql` hands the `mysql`/`mariadb` client ([`client`]).
//!
//! The same token as for PostgreSQL (a presigned `connect` URL for
//! host:port) goes to the server as a cleartext password with the
//! `mysql_clear_password` plugin, so it is sent only inside verified TLS.

pub mod client;
pub mod wire;

use crate::output::shell_quote;
use crate::session::Resolved;

/// What the `mysql`/`mariadb` client reads from the environment, token
/// included (as `-o env` prints `PGPASSWORD` for PostgreSQL): host, port,
/// password and the switch that lets Oracle's client send a cleartext
/// password. The client has no variable for the user, the CA or TLS
/// verification, so the printed lines end with the flags that give them.
pub fn env_lines(resolved: &Resolved, ca_file: &str, token: &str) -> String {
    let endpoint = &resolved.endpoint;
    let vars = [
        ("MYSQL_HOST", endpoint.host.clone()),
        ("MYSQL_TCP_PORT", endpoint.port.to_string()),
        ("MYSQL_PWD", token.to_owned()),
        ("LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN", "1".to_owned()),
    ];
    let mut text: String = vars
        .iter()
        .map(|(name, value)| format!("export {name}={}\n", shell_quote(value)))
        .collect();
    text.push_str(&format!(
        "# then: mysql --user={} --ssl-verify-server-cert --ssl-ca={} (or `rdsiam mysql`, which does it all)\n",
        shell_quote(&resolved.target.user),
        shell_quote(ca_file)
    ));
    text
}

pub use crate::engine::{quote_account, quote_ident};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_and_identifiers_are_quoted() {
        assert_eq!(quote_account("iamuser"), "'iamuser'@'%'");
        assert_eq!(quote_account("o'brien\\"), "'o''brien\\\\'@'%'");
        assert_eq!(quote_ident("a`b"), "`a``b`");
    }
}

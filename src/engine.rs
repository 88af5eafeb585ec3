//! Which database protocol a target speaks: PostgreSQL or MySQL (MariaDB
//! too). `--host` targets name it (`--engine`); the others learn it from the
//! RDS API. Commands that serve one engine only refuse the other with exit 2
//! and name the command that serves it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Failure;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    #[default]
    Postgres,
    /// MySQL, Aurora MySQL and MariaDB: one wire protocol, one token.
    Mysql,
}

impl Engine {
    /// The default port of the engine (RDS Proxy's too: the API does not
    /// report a proxy's port).
    pub fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::Mysql => 3306,
        }
    }

    /// `--engine`'s word.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        }
    }

    /// For messages.
    pub fn product(self) -> &'static str {
        match self {
            Engine::Postgres => "PostgreSQL",
            Engine::Mysql => "MySQL/MariaDB",
        }
    }

    /// From an RDS API engine name or proxy engine family: `postgres`,
    /// `aurora-postgresql`, `POSTGRESQL`; `mysql`, `aurora-mysql`,
    /// `mariadb`, `MYSQL`. Others (SQL Server, Oracle) have no IAM login here.
    pub fn from_api(name: &str) -> Option<Engine> {
        let lower = name.to_ascii_lowercase();
        if lower.contains("postgres") {
            Some(Engine::Postgres)
        } else if lower.contains("mysql") || lower.contains("mariadb") {
            Some(Engine::Mysql)
        } else {
            None
        }
    }

    /// The interactive client command for this engine.
    pub fn client_command(self) -> &'static str {
        match self {
            Engine::Postgres => "rdsiam psql (or rdsiam sql)",
            Engine::Mysql => "rdsiam mysql",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Exit 2 unless `engine` is `serves`: `command` serves only that engine.
/// The hint names what serves the target instead.
pub fn require(engine: Engine, serves: Engine, command: &str, what: &str) -> anyhow::Result<()> {
    if engine == serves {
        return Ok(());
    }
    let instead = match (command, engine) {
        (_, Engine::Mysql) => "rdsiam mysql".to_owned(),
        ("sql" | "psql", Engine::Postgres) => "rdsiam psql or rdsiam sql".to_owned(),
        (_, Engine::Postgres) => "rdsiam psql".to_owned(),
    };
    Err(Failure::usage(format!(
        "rdsiam {command} serves {} targets only, and {what} is {}",
        serves.product(),
        engine.product()
    ))
    .hint(format!(
        "use {instead} for this target (`rdsiam check` and `rdsiam token` serve both)"
    ))
    .hint("for a --host target, --engine postgres|mysql says which it is")
    .into())
}

/// A MySQL account as SQL: `'name'@'%'`, quotes and backslashes escaped
/// (for hints; here so the cause list in `connect` can name it).
pub fn quote_account(user: &str) -> String {
    format!("'{}'@'%'", user.replace('\\', "\\\\").replace('\'', "''"))
}

/// A MySQL identifier in backticks.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names_map_to_engines() {
        for (name, want) in [
            ("POSTGRESQL", Some(Engine::Postgres)),
            ("aurora-postgresql", Some(Engine::Postgres)),
            ("postgres", Some(Engine::Postgres)),
            ("MYSQL", Some(Engine::Mysql)),
            ("aurora-mysql", Some(Engine::Mysql)),
            ("mysql", Some(Engine::Mysql)),
            ("mariadb", Some(Engine::Mysql)),
            ("SQLSERVER", None),
        ] {
            assert_eq!(Engine::from_api(name), want, "{name}");
        }
        assert_eq!(Engine::Mysql.default_port(), 3306);
        assert_eq!(Engine::Postgres.default_port(), 5432);
    }

    #[test]
    fn refusals_name_the_command_that_serves() {
        let err = require(Engine::Mysql, Engine::Postgres, "sql", "proxy `p`").unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 2);
        let text = format!("{err:#}");
        assert!(text.contains("rdsiam mysql"), "{text}");
        let err = require(Engine::Postgres, Engine::Mysql, "mysql", "host `h`").unwrap_err();
        assert!(format!("{err:#}").contains("rdsiam psql"));
        assert!(require(Engine::Mysql, Engine::Mysql, "mysql", "x").is_ok());
    }
}

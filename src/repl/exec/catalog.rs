//! psql's catalogue queries behind `\dt`, `\d`, `\l` and `\du`, and
//! `\d NAME`'s look-up of what kind of relation a name is.

use std::cell::Cell;

use tokio_postgres::SimpleQueryMessage;

use crate::error::Failure;

use super::{Runner, StmtError, interrupt};

impl Runner {
    /// `\d NAME`: the relation's columns, and its indexes when it has any.
    pub(super) async fn describe(&mut self, name: &str) -> Result<(), StmtError> {
        let lit = literal(name);
        self.ensure_session().await?;
        let query =
            format!("SELECT c.relkind::text FROM pg_class c WHERE c.oid = to_regclass({lit})");
        let interactive = self.interactive();
        let Runner {
            link,
            interrupts,
            statements,
            ..
        } = self;
        let client = link.client().expect("ensure_session connected");
        // The look-up waits on the server like any statement: Ctrl-C must
        // reach it (a dead link would otherwise hold the prompt).
        let cancelled = Cell::new(false);
        let found = interrupt::cancellable(
            client.simple_query(&query),
            &cancelled,
            interrupts,
            link,
            client.cancel_token(),
            interactive,
            *statements,
        )
        .await;
        let found = self.settle(&cancelled, found)?;
        let found = match found {
            Ok(messages) => messages.into_iter().find_map(|m| match m {
                SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            }),
            Err(err) => return Err(self.statement_failed("", &err).await),
        };
        let Some(kind) = found else {
            return Err(StmtError::Local(
                Failure::usage(format!("no relation named \"{name}\""))
                    .hint("\\dt lists tables, \\d lists every relation")
                    .into(),
            ));
        };
        let what = match kind.as_str() {
            "r" | "p" => "Table",
            "v" => "View",
            "m" => "Materialized view",
            "S" => "Sequence",
            "i" | "I" => "Index",
            "f" => "Foreign table",
            _ => "Relation",
        };
        let columns = format!(
            "SELECT a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type, \
             CASE WHEN a.attnotnull THEN 'not null' ELSE '' END AS nullable, \
             pg_get_expr(d.adbin, d.adrelid) AS default \
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = to_regclass({lit}) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum"
        );
        self.run_sql(&columns, Some(&format!("{what} \"{name}\"")))
            .await?;
        if matches!(kind.as_str(), "r" | "p" | "m") {
            let indexes = format!(
                "SELECT i.indexrelid::regclass::text AS index, pg_get_indexdef(i.indexrelid) AS definition \
                 FROM pg_index i WHERE i.indrelid = to_regclass({lit}) ORDER BY 1"
            );
            self.run_sql(&indexes, Some("Indexes")).await?;
        }
        Ok(())
    }
}

/// A SQL string literal (standard_conforming_strings, the default since 9.1).
pub(super) fn literal(s: &str) -> String {
    crate::output::quote_literal(s)
}

/// `\dt` / `\d`: relations of `kinds`, visible in the search path unless a
/// pattern names them (`*` and `?` as in psql; `schema.name` splits).
pub(super) fn tables_sql(pattern: Option<&str>, kinds: &[&str]) -> String {
    let kinds: Vec<String> = kinds.iter().map(|k| literal(k)).collect();
    let mut filter = String::new();
    match pattern {
        None => filter.push_str(" AND pg_table_is_visible(c.oid)"),
        Some(p) => {
            let like = |s: &str| literal(&s.replace('*', "%").replace('?', "_"));
            match p.split_once('.') {
                Some((schema, name)) => filter.push_str(&format!(
                    " AND n.nspname LIKE {} AND c.relname LIKE {}",
                    like(schema),
                    like(name)
                )),
                None => filter.push_str(&format!(" AND c.relname LIKE {}", like(p))),
            }
        }
    }
    format!(
        "SELECT n.nspname AS schema, c.relname AS name, \
         CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view' \
         WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' END AS type, \
         pg_get_userbyid(c.relowner) AS owner \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ({}) AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname !~ '^pg_toast'{filter} ORDER BY 1, 2",
        kinds.join(", ")
    )
}

pub(super) const DATABASES_SQL: &str = "SELECT datname AS name, pg_get_userbyid(datdba) AS owner, \
pg_encoding_to_char(encoding) AS encoding, datallowconn AS allow_connections \
FROM pg_database ORDER BY 1";

pub(super) const ROLES_SQL: &str = "SELECT r.rolname AS role, concat_ws(', ', \
CASE WHEN r.rolsuper THEN 'superuser' END, CASE WHEN r.rolcreaterole THEN 'create role' END, \
CASE WHEN r.rolcreatedb THEN 'create db' END, CASE WHEN NOT r.rolcanlogin THEN 'cannot login' END, \
CASE WHEN r.rolreplication THEN 'replication' END, CASE WHEN r.rolbypassrls THEN 'bypass rls' END) AS attributes, \
ARRAY(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON m.roleid = b.oid \
WHERE m.member = r.oid ORDER BY 1) AS member_of \
FROM pg_roles r WHERE r.rolname !~ '^pg_' ORDER BY 1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_patterns() {
        assert!(tables_sql(None, &["r"]).contains("pg_table_is_visible"));
        let sql = tables_sql(Some("pub*.ord?r's"), &["r"]);
        assert!(sql.contains("n.nspname LIKE 'pub%'"), "{sql}");
        assert!(sql.contains("c.relname LIKE 'ord_r''s'"), "{sql}");
    }
}

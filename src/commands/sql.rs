//! `rdsiam sql`: the built-in SQL prompt (being written; see issue 5).

use anyhow::Result;

use crate::cli::SqlArgs;
use crate::error::Failure;

pub fn run(_args: SqlArgs) -> Result<u8> {
    Err(Failure::usage("`rdsiam sql` is not built yet")
        .hint("use `rdsiam psql` meanwhile")
        .into())
}

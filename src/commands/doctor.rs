//! `rdsiam doctor`: run the diagnosis (see `crate::doctor`), print it, and
//! exit with the first failure's code.

use anyhow::Result;

use crate::cli::{CheckOutput, DoctorArgs};
use crate::connect::Connector;
use crate::doctor;
use crate::error::{Failure, Kind};
use crate::output::{print, print_json};
use crate::target::Target;

use super::runtime;

pub fn run(args: DoctorArgs) -> Result<u8> {
    // Usage errors (flags, config, an unreadable --ca-bundle) come before
    // any network call, as everywhere else.
    let (target, conn) = Target::with_conn(&args.target, &args.conn)?;
    let connector = Connector::from_args(&conn)?;
    let report = runtime()?.block_on(doctor::diagnose(&target, &connector, args.strict));
    match args.output {
        CheckOutput::Json => print_json(&report)?,
        CheckOutput::Text => print(&report.render_text())?,
    }
    if let Some(step) = report.first_failure() {
        let kind = match step.exit_code {
            Some(3) => Kind::Aws,
            Some(4) => Kind::Network,
            Some(5) => Kind::Login,
            _ => Kind::Other,
        };
        let more = report.failures - 1;
        return Err(Failure::new(
            kind,
            format!(
                "doctor: step {} ({}) failed: {}",
                step.step, step.name, step.found
            ),
        )
        .hint(match (step.next.first(), more) {
            (Some(next), 0) => format!("next: {next}"),
            (Some(next), n) => format!("next: {next} ({n} more failed step(s) in the report)"),
            (None, _) => "the report above has every step".to_owned(),
        })
        .into());
    }
    if report.exit_code == Kind::Expectation.code() {
        return Err(Failure::new(
            Kind::Expectation,
            format!("doctor --strict: {} step(s) warned", report.warnings),
        )
        .hint("fix the warnings in the report above, or run without --strict")
        .into());
    }
    Ok(0)
}

//! Failures that carry their own exit code and a "what to do next" hint.
//!
//! Plumbing uses `anyhow`; anything a user or a runbook must tell apart is a
//! [`Failure`] with a [`Kind`], whose number is part of the public contract
//! (DESIGN.md, "Exit codes").

use std::fmt;

/// The documented exit codes. Runbooks branch on these; never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 1: anything else.
    Other,
    /// 2: the command line (or config) is wrong.
    Usage,
    /// 3: AWS side: credentials, region, API, target not found.
    Aws,
    /// 4: network or TLS between us and the database.
    Network,
    /// 5: the database refused the login.
    Login,
    /// 6: an expectation such as `--expect-user` failed.
    Expectation,
}

impl Kind {
    pub fn code(self) -> u8 {
        match self {
            Kind::Other => 1,
            Kind::Usage => 2,
            Kind::Aws => 3,
            Kind::Network => 4,
            Kind::Login => 5,
            Kind::Expectation => 6,
        }
    }
}

/// Help text listing the exit codes, shown by `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok
  1  other error
  2  usage (bad flags, config or input)
  3  AWS side (credentials, region, API error, target not found)
  4  network or TLS
  5  the database refused the login
  6  an expectation failed (--expect-user)";

/// Where on the way to a session a connection failed (issue 18): callers
/// ask this of a [`Failure`], never its words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Resolving the endpoint's (or `--via`'s) name.
    Dns,
    /// Opening TCP.
    Tcp,
    /// Asking for TLS (PostgreSQL's SSLRequest, MySQL's greeting).
    TlsRequest,
    /// The TLS handshake.
    Tls,
    /// The server's certificate was refused (wrong name, untrusted,
    /// expired): never cured by trying again.
    Certificate,
    /// Authentication: the server answered the token.
    Login,
    /// After login: a statement, or the session ending.
    Session,
}

/// An error with a kind (exit code), what failed, and what to do next;
/// for a connection, also the stage and the server's SQLSTATE, kept as data.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
    pub hints: Vec<String>,
    pub stage: Option<Stage>,
    /// The server's error code: a SQLSTATE (PostgreSQL), or MySQL's number.
    pub code: Option<String>,
}

impl Failure {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            hints: Vec::new(),
            stage: None,
            code: None,
        }
    }

    /// Say where on the way to a session this happened.
    pub fn at(mut self, stage: Stage) -> Self {
        self.stage = Some(stage);
        self
    }

    /// Keep the server's error code.
    pub fn code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Whether the server refused the credentials themselves: PostgreSQL's
    /// 28P01/28000, MySQL's 1045.
    pub fn is_refused_login(&self) -> bool {
        self.kind == Kind::Login && matches!(self.code.as_deref(), Some("28P01" | "28000" | "1045"))
    }

    /// Whether the server's error code is `code`.
    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    pub fn aws(message: impl Into<String>) -> Self {
        Self::new(Kind::Aws, message)
    }

    pub fn network(message: impl Into<String>) -> Self {
        Self::new(Kind::Network, message)
    }

    /// Add a line telling the user what to do next.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for hint in &self.hints {
            write!(f, "\n  {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// Exit code for any error that reached `main`.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    err.downcast_ref::<Failure>()
        .map_or(Kind::Other.code(), |f| f.kind.code())
}

/// Render an error for stderr: the failure itself, or the anyhow chain once.
/// Control characters are escaped: messages carry text from servers and
/// APIs, which must not drive the terminal.
pub fn render(err: &anyhow::Error) -> String {
    let text = match err.downcast_ref::<Failure>() {
        Some(failure) => format!("rdsiam: {failure}"),
        None => format!("rdsiam: {err:#}"),
    };
    crate::output::escape_controls(&text).into_owned()
}

/// Print a clap outcome: help and version to stdout (exit 0), usage errors
/// with our prefix (exit 2), as every other error is.
pub fn clap_exit(err: &clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    if err.exit_code() == 0 {
        let _ = err.print();
        return std::process::ExitCode::SUCCESS;
    }
    let text = err.render().to_string();
    match err.kind() {
        // `rdsiam` alone: the help is the message.
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => eprint!("{text}"),
        _ => eprint!("rdsiam: {}", text.strip_prefix("error: ").unwrap_or(&text)),
    }
    std::process::ExitCode::from(Kind::Usage.code())
}

/// True when the error is a closed stdout (`rdsiam token | head -c 10`),
/// which is not a failure of ours.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Names close to `wanted`, best first, for "did you mean" hints.
pub fn suggestions<'a>(wanted: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let wanted_lower = wanted.to_lowercase();
    let mut scored: Vec<(f64, &str)> = names
        .into_iter()
        .map(|name| {
            let lower = name.to_lowercase();
            let mut score = strsim::jaro_winkler(&wanted_lower, &lower);
            if lower.contains(&wanted_lower) || wanted_lower.contains(&lower) {
                score = score.max(0.9);
            }
            (score, name)
        })
        .filter(|(score, _)| *score >= 0.8)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.into_iter().take(3).map(|(_, name)| name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let kinds = [
            Kind::Other,
            Kind::Usage,
            Kind::Aws,
            Kind::Network,
            Kind::Login,
            Kind::Expectation,
        ];
        let codes: Vec<u8> = kinds.iter().map(|k| k.code()).collect();
        assert_eq!(codes, [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn failure_renders_message_then_hints() {
        let err = anyhow::Error::new(Failure::aws("no region").hint("pass --region"));
        assert_eq!(render(&err), "rdsiam: no region\n  pass --region");
        assert_eq!(exit_code(&err), 3);
    }

    #[test]
    fn plain_errors_exit_1_with_chain() {
        let err = anyhow::anyhow!("inner").context("outer");
        assert_eq!(render(&err), "rdsiam: outer: inner");
        assert_eq!(exit_code(&err), 1);
    }

    #[test]
    fn suggests_close_names() {
        let names = ["orders-proxy", "billing-proxy", "PostgreSqlProxy"];
        assert_eq!(suggestions("orders-prxy", names), ["orders-proxy"]);
        assert_eq!(suggestions("postgresqlproxy", names), ["PostgreSqlProxy"]);
        assert!(suggestions("zzz", names).is_empty());
    }
}

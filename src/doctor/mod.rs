//! `rdsiam doctor`'s diagnosis: the chain from credentials to a query,
//! one [`Step`] at a time, each with what it found, its time, and on a
//! failure or warning the exact next step. A step that needs a failed one is
//! skipped; every other step still runs, so one run names every problem.
//!
//! One file per group of steps: [`creds`] (1 credentials, 2 identity),
//! [`target`] (3 target, 4 policy; also the ARNs `rdsiam policy` prints),
//! [`net`] (5 network, 6 TLS), [`login`] (7 login, 8 inside), [`mysql`]
//! (7 and 8 for MySQL targets).

pub mod creds;
pub mod login;
pub mod mysql;
pub mod net;
pub mod target;

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::aws::Aws;
use crate::connect::Connector;
use crate::endpoint::Endpoint;
use crate::engine::Engine;
use crate::error::{Failure, Kind};
use crate::session::Resolved;
use crate::target::{Selector, Target};

/// Bumped only when a key is removed or changes meaning (README, "doctor").
pub const SCHEMA_VERSION: u32 = 1;

/// How long any one AWS API step of `policy` may take in all, retries included.
pub const API_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One step's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// 1 to 8.
    pub step: u8,
    /// `credentials`, `identity`, `target`, `policy`, `network`, `tls`, `login`, `inside`.
    pub name: &'static str,
    pub status: Status,
    /// What the step found, one line.
    pub found: String,
    /// On warn and FAIL: what to do next, one instruction per entry.
    pub next: Vec<String>,
    /// On FAIL: the exit code this failure stands for (3, 4, 5; 1 otherwise).
    pub exit_code: Option<u8>,
    pub elapsed_ms: u64,
    /// Step-specific facts; keys are documented in the README.
    pub details: Map<String, Value>,
}

impl Step {
    pub fn new(step: u8, name: &'static str) -> Step {
        Step {
            step,
            name,
            status: Status::Ok,
            found: String::new(),
            next: Vec::new(),
            exit_code: None,
            elapsed_ms: 0,
            details: Map::new(),
        }
    }

    pub fn ok(mut self, found: impl Into<String>) -> Step {
        self.status = Status::Ok;
        self.found = found.into();
        self
    }

    /// A warning; a later FAIL or another warning never downgrades it.
    pub fn warn(mut self, found: impl Into<String>, next: impl Into<String>) -> Step {
        if self.status != Status::Fail {
            self.status = Status::Warn;
        }
        self.found = found.into();
        self.next.push(next.into());
        self
    }

    pub fn fail(mut self, kind: Kind, found: impl Into<String>) -> Step {
        self.status = Status::Fail;
        self.exit_code = Some(kind.code());
        self.found = found.into();
        self
    }

    /// A failure from the shared code: its message and hints.
    pub fn fail_with(self, err: &anyhow::Error) -> Step {
        match err.downcast_ref::<Failure>() {
            Some(failure) => {
                let mut step = self.fail(failure.kind, failure.message.clone());
                step.next.extend(failure.hints.iter().cloned());
                step
            }
            None => self.fail(Kind::Other, format!("{err:#}")),
        }
    }

    pub fn skip(mut self, why: impl Into<String>) -> Step {
        self.status = Status::Skip;
        self.found = why.into();
        self
    }

    pub fn then(mut self, next: impl Into<String>) -> Step {
        self.next.push(next.into());
        self
    }

    pub fn detail(mut self, key: &str, value: impl Serialize) -> Step {
        self.details.insert(
            key.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }

    fn is(&self, status: Status) -> bool {
        self.status == status
    }
}

/// What the run was about, for the report's header.
#[derive(Debug, Default, Serialize)]
pub struct Subject {
    /// `proxy`, `cluster-writer`, `cluster-reader`, `instance`, `host`.
    pub kind: String,
    pub name: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: String,
    pub dbname: Option<String>,
    pub region: Option<String>,
    pub via: Option<String>,
    pub sslmode: String,
}

/// The whole diagnosis; `rdsiam doctor -o json` prints exactly this.
#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub target: Subject,
    pub steps: Vec<Step>,
    pub failures: usize,
    pub warnings: usize,
    /// The first failure's code, 0 when nothing failed (6 under --strict
    /// with warnings only).
    pub exit_code: u8,
}

impl Report {
    fn finish(mut self, strict: bool) -> Report {
        self.failures = self.steps.iter().filter(|s| s.is(Status::Fail)).count();
        self.warnings = self.steps.iter().filter(|s| s.is(Status::Warn)).count();
        self.exit_code =
            self.steps
                .iter()
                .find_map(|s| s.exit_code)
                .unwrap_or(if strict && self.warnings > 0 {
                    Kind::Expectation.code()
                } else {
                    0
                });
        self
    }

    /// The first failed step, for the one-line error on stderr.
    pub fn first_failure(&self) -> Option<&Step> {
        self.steps.iter().find(|s| s.is(Status::Fail))
    }

    pub fn render_text(&self) -> String {
        // Names come from the command line and config, `found` and `next`
        // from servers and APIs: none may drive the terminal (issue 24).
        use crate::output::one_line;
        let t = &self.target;
        let mut out = format!(
            "rdsiam doctor: {} {} as {}",
            t.kind,
            one_line(&t.name),
            one_line(&t.user)
        );
        if let Some(region) = &t.region {
            out.push_str(&format!(", region {}", one_line(region)));
        }
        if let Some(via) = &t.via {
            out.push_str(&format!(", via {}", one_line(via)));
        }
        out.push('\n');
        for step in &self.steps {
            let time = if step.is(Status::Skip) {
                String::new()
            } else {
                format!(" ({} ms)", step.elapsed_ms)
            };
            out.push_str(&format!(
                "{:<5} {} {:<12} {}{time}\n",
                step.status.label(),
                step.step,
                step.name,
                one_line(&step.found)
            ));
            if !step.is(Status::Ok) {
                for next in &step.next {
                    out.push_str(&format!("        next: {}\n", one_line(next)));
                }
            }
        }
        let failed: Vec<String> = self
            .steps
            .iter()
            .filter(|s| s.is(Status::Fail))
            .map(|s| format!("{} {}", s.step, s.name))
            .collect();
        out.push_str(&format!(
            "result: {} failed{}, {} warning{}; exit {}\n",
            self.failures,
            if failed.is_empty() {
                String::new()
            } else {
                format!(" ({})", failed.join(", "))
            },
            self.warnings,
            if self.warnings == 1 { "" } else { "s" },
            self.exit_code
        ));
        out
    }
}

/// What earlier steps learned, for the later ones.
#[derive(Default)]
pub struct Findings {
    /// Step 1 passed: credentials loaded and not about to expire.
    pub credentials_fresh: bool,
    /// Step 2 verified the key pair's signature with STS.
    pub signature_ok: bool,
    pub caller_arn: Option<String>,
    pub account: Option<String>,
    /// Step 2's measured clock offset (AWS minus local), seconds.
    pub clock_skew: Option<i64>,
    pub proxy: Option<target::ProxyDetails>,
    /// Step 3 says the engine is one rdsiam serves, PostgreSQL or MySQL
    /// (None: not asked).
    pub postgres: Option<bool>,
    /// The policy resources step 4 named.
    pub resource_arn: Option<String>,
    pub proxy_role_arn: Option<String>,
    pub proxy_role_resource_arn: Option<String>,
}

/// Run the eight steps for `target`.
pub async fn diagnose(target: &Target, connector: &Connector, strict: bool) -> Report {
    let live = Live { target, connector };
    let report = Report::about(target, connector);
    run(&live, target, report, connector.via.is_some(), strict).await
}

/// Each step's work, apart from their order and the rules for skipping
/// (which [`run`] holds, and its tests check with scripted steps).
pub(crate) trait Checks {
    /// What step 5 hands step 6.
    type Stream;
    /// What step 7 hands step 8.
    type Session;
    async fn credentials(&self, found: &mut Findings) -> (Step, Option<Aws>);
    async fn identity(&self, aws: &Aws, found: &mut Findings) -> Step;
    async fn target(&self, aws: &Aws, found: &mut Findings) -> (Step, Option<Endpoint>);
    fn policy(&self, endpoint: &Endpoint, aws: &Aws, found: &mut Findings) -> Step;
    async fn network(&self, endpoint: &Endpoint) -> (Step, Option<Self::Stream>);
    async fn tls(&self, stream: Self::Stream, endpoint: &Endpoint) -> Step;
    async fn login(&self, resolved: &Resolved, found: &Findings) -> (Step, Option<Self::Session>);
    async fn inside(&self, resolved: &Resolved, session: Self::Session) -> Step;
}

/// The steps against the real world.
struct Live<'a> {
    target: &'a Target,
    connector: &'a Connector,
}

/// What step 7 hands step 8, by engine.
enum Session {
    Postgres(login::LoggedIn),
    Mysql(crate::mysql::wire::Session),
}

impl Checks for Live<'_> {
    type Stream = tokio::net::TcpStream;
    type Session = Session;

    async fn credentials(&self, found: &mut Findings) -> (Step, Option<Aws>) {
        creds::credentials(self.target, found).await
    }

    async fn identity(&self, aws: &Aws, found: &mut Findings) -> Step {
        creds::identity(aws, found).await
    }

    async fn target(&self, aws: &Aws, found: &mut Findings) -> (Step, Option<Endpoint>) {
        target::target(aws, self.target, found).await
    }

    fn policy(&self, endpoint: &Endpoint, aws: &Aws, found: &mut Findings) -> Step {
        target::policy(endpoint, aws, self.target, found)
    }

    async fn network(&self, endpoint: &Endpoint) -> (Step, Option<Self::Stream>) {
        net::network(endpoint, self.connector).await
    }

    async fn tls(&self, stream: Self::Stream, endpoint: &Endpoint) -> Step {
        net::tls(stream, endpoint, self.connector).await
    }

    async fn login(&self, resolved: &Resolved, found: &Findings) -> (Step, Option<Session>) {
        if resolved.endpoint.family == Engine::Mysql {
            let (step, session) = mysql::login(resolved, self.connector, found).await;
            (step, session.map(Session::Mysql))
        } else {
            let (step, session) = login::login(resolved, self.connector, found).await;
            (step, session.map(Session::Postgres))
        }
    }

    async fn inside(&self, resolved: &Resolved, session: Session) -> Step {
        match session {
            Session::Postgres(logged_in) => {
                login::inside(resolved, logged_in, self.connector.timeout).await
            }
            Session::Mysql(session) => {
                mysql::inside(resolved, session, self.connector.timeout).await
            }
        }
    }
}

impl Report {
    /// An empty report about `target`.
    fn about(target: &Target, connector: &Connector) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            target: Subject {
                kind: match &target.selector {
                    Selector::Proxy(_) => "proxy",
                    Selector::Cluster { reader: false, .. } => "cluster-writer",
                    Selector::Cluster { reader: true, .. } => "cluster-reader",
                    Selector::Instance(_) => "instance",
                    Selector::Host(_) => "host",
                }
                .to_owned(),
                name: match &target.selector {
                    Selector::Proxy(n) | Selector::Instance(n) | Selector::Host(n) => n.clone(),
                    Selector::Cluster { id, .. } => id.clone(),
                },
                user: target.user.clone(),
                dbname: target.dbname.clone(),
                via: connector.via.as_ref().map(ToString::to_string),
                sslmode: connector.sslmode.as_str().to_owned(),
                ..Subject::default()
            },
            steps: Vec::new(),
            failures: 0,
            warnings: 0,
            exit_code: 0,
        }
    }
}

/// The eight steps in order: a step that needs a failed (or skipped) one
/// is skipped saying which; every other step runs, so one run names every
/// problem.
async fn run<C: Checks>(
    checks: &C,
    target: &Target,
    mut report: Report,
    tunnelled: bool,
    strict: bool,
) -> Report {
    let mut found = Findings::default();

    // 1. Credentials, 2. Identity.
    let started = Instant::now();
    let (step, aws) = checks.credentials(&mut found).await;
    push(&mut report, step, started);
    report.target.region = aws.as_ref().map(|a| a.region.clone());
    let started = Instant::now();
    let step = match &aws {
        Some(aws) => checks.identity(aws, &mut found).await,
        None => Step::new(2, "identity").skip("needs credentials (step 1)"),
    };
    push(&mut report, step, started);

    // 3. Target, 4. Policy.
    let started = Instant::now();
    let (step, endpoint) = match (&target.selector, &aws) {
        (Selector::Host(host), _) => (
            Step::new(3, "target").skip(
                "--host: no RDS API call, so engine, status and IAM auth are not checked (name it with --proxy, --cluster or --instance to check them)",
            ),
            Some(Endpoint::host(
                host,
                target.port,
                target.engine.unwrap_or_default(),
            )),
        ),
        (_, Some(aws)) => checks.target(aws, &mut found).await,
        (_, None) => (
            Step::new(3, "target").skip("needs credentials for the RDS API (step 1)"),
            None,
        ),
    };
    push(&mut report, step, started);
    if let Some(endpoint) = &endpoint {
        report.target.host = Some(endpoint.host.clone());
        report.target.port = Some(endpoint.port);
    }
    let started = Instant::now();
    let step = match (&endpoint, &aws) {
        (Some(endpoint), Some(aws)) => checks.policy(endpoint, aws, &mut found),
        (Some(_), None) => Step::new(4, "policy").skip("needs the region (step 1)"),
        (None, _) => Step::new(4, "policy").skip("needs the target (step 3)"),
    };
    push(&mut report, step, started);

    // 5. Network, 6. TLS.
    let Some(endpoint) = endpoint else {
        for (n, name) in [(5, "network"), (6, "tls"), (7, "login"), (8, "inside")] {
            report
                .steps
                .push(Step::new(n, name).skip("needs the target (step 3)"));
        }
        return report.finish(strict);
    };
    let started = Instant::now();
    let (step, stream) = checks.network(&endpoint).await;
    let private = step.details.get("private") == Some(&Value::Bool(true));
    push(&mut report, step, started);
    let not_served = found.postgres == Some(false);
    const NOT_SERVED: &str = "the target is neither PostgreSQL nor MySQL (step 3)";
    let started = Instant::now();
    let step = match stream {
        _ if not_served => Step::new(6, "tls").skip(NOT_SERVED),
        Some(stream) => checks.tls(stream, &endpoint).await,
        None => Step::new(6, "tls").skip("needs a TCP connection (step 5)"),
    };
    let tls_ok = !step.is(Status::Fail) && !step.is(Status::Skip);
    let step = if !tls_ok && private && !tunnelled {
        // A private address answered, but not as the database: from outside
        // the VPC that is a middlebox (a corporate proxy, a captive portal).
        net::tunnel_advice(step, &endpoint)
    } else {
        step
    };
    push(&mut report, step, started);

    // 7. Login, 8. Inside.
    let started = Instant::now();
    let resolved = aws.map(|aws| Resolved {
        target: target.clone(),
        aws,
        endpoint: endpoint.clone(),
    });
    let (step, session) = match &resolved {
        _ if not_served => (Step::new(7, "login").skip(NOT_SERVED), None),
        None => (
            Step::new(7, "login").skip("needs credentials to sign a token (step 1)"),
            None,
        ),
        Some(_) if !tls_ok => (
            Step::new(7, "login").skip("needs a TLS connection (step 6)"),
            None,
        ),
        Some(resolved) => checks.login(resolved, &found).await,
    };
    let login_ok = !step.is(Status::Fail) && !step.is(Status::Skip);
    push(&mut report, step, started);
    let started = Instant::now();
    let step = match (&resolved, session) {
        (Some(resolved), Some(session)) if login_ok => checks.inside(resolved, session).await,
        _ => Step::new(8, "inside").skip("needs a login (step 7)"),
    };
    push(&mut report, step, started);
    report.finish(strict)
}

fn push(report: &mut Report, mut step: Step, started: Instant) {
    step.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    report.steps.push(step);
}

/// `AKIA…MPLE`: enough to tell keys apart, not enough to use one.
pub fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "…".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// `1 h 5 min`, `9 min`, `42 s`, for how long until something happens.
pub fn human_duration(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        _ if secs < 2 * 86400 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} days", secs / 86400),
    }
}

/// RFC 3339 for a moment, as the rest of the JSON output writes them.
pub fn rfc3339(at: std::time::SystemTime) -> String {
    aws_smithy_types::DateTime::from(at)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::AwsSettings;
    use std::cell::RefCell;

    /// Steps that pass, or fail when named in `fail`, and say which ran.
    #[derive(Default)]
    struct Scripted {
        fail: &'static [&'static str],
        /// What step 3 says of the engine (`Some(false)`: not one we serve).
        served: Option<bool>,
        /// Step 5 reached a private address.
        private: bool,
        ran: RefCell<Vec<&'static str>>,
    }

    impl Scripted {
        fn step(&self, n: u8, name: &'static str, kind: Kind) -> Step {
            self.ran.borrow_mut().push(name);
            let step = Step::new(n, name);
            if self.fail.contains(&name) {
                step.fail(kind, format!("{name} failed"))
            } else {
                step.ok(format!("{name} fine"))
            }
        }

        fn passed(&self, name: &str) -> bool {
            !self.fail.contains(&name)
        }
    }

    impl Checks for Scripted {
        type Stream = ();
        type Session = ();

        async fn credentials(&self, _: &mut Findings) -> (Step, Option<Aws>) {
            let step = self.step(1, "credentials", Kind::Aws);
            let creds = aws_credential_types::Credentials::new("AKIAEXAMPLE", "s", None, None, "t");
            (
                step,
                self.passed("credentials")
                    .then(|| Aws::for_tests(creds, None)),
            )
        }

        async fn identity(&self, _: &Aws, _: &mut Findings) -> Step {
            self.step(2, "identity", Kind::Aws)
        }

        async fn target(&self, _: &Aws, found: &mut Findings) -> (Step, Option<Endpoint>) {
            found.postgres = self.served;
            let step = self.step(3, "target", Kind::Aws);
            let endpoint = Endpoint::host("db.example", Some(5432), Engine::Postgres);
            (step, self.passed("target").then_some(endpoint))
        }

        fn policy(&self, _: &Endpoint, _: &Aws, _: &mut Findings) -> Step {
            self.step(4, "policy", Kind::Aws)
        }

        async fn network(&self, _: &Endpoint) -> (Step, Option<()>) {
            let step = self
                .step(5, "network", Kind::Network)
                .detail("private", self.private);
            (step, self.passed("network").then_some(()))
        }

        async fn tls(&self, (): (), _: &Endpoint) -> Step {
            self.step(6, "tls", Kind::Network)
        }

        async fn login(&self, _: &Resolved, _: &Findings) -> (Step, Option<()>) {
            (
                self.step(7, "login", Kind::Login),
                self.passed("login").then_some(()),
            )
        }

        async fn inside(&self, _: &Resolved, (): ()) -> Step {
            self.step(8, "inside", Kind::Expectation)
        }
    }

    fn proxy_target() -> Target {
        Target {
            selector: Selector::Proxy("app-proxy".into()),
            port: None,
            engine: None,
            user: "app".into(),
            dbname: None,
            aws: AwsSettings::default(),
        }
    }

    /// Run `checks` and give back (each step's status label, exit code).
    fn diagnosed(checks: &Scripted, target: &Target, tunnelled: bool) -> (Report, String) {
        let report = Report {
            schema_version: SCHEMA_VERSION,
            target: Subject::default(),
            steps: Vec::new(),
            failures: 0,
            warnings: 0,
            exit_code: 0,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let report = runtime.block_on(run(checks, target, report, tunnelled, false));
        let statuses = report
            .steps
            .iter()
            .map(|s| s.status.label())
            .collect::<Vec<_>>()
            .join(" ");
        (report, statuses)
    }

    fn skip_reason(report: &Report, n: u8) -> &str {
        &report.steps[usize::from(n) - 1].found
    }

    #[test]
    fn every_step_runs_in_order_when_all_pass() {
        let checks = Scripted::default();
        let (report, statuses) = diagnosed(&checks, &proxy_target(), false);
        assert_eq!(statuses, "ok ok ok ok ok ok ok ok");
        assert_eq!(
            *checks.ran.borrow(),
            [
                "credentials",
                "identity",
                "target",
                "policy",
                "network",
                "tls",
                "login",
                "inside"
            ]
        );
        assert_eq!(report.exit_code, 0);
        assert_eq!(report.target.host.as_deref(), Some("db.example"));
    }

    #[test]
    fn without_credentials_only_what_needs_none_runs() {
        let checks = Scripted {
            fail: &["credentials"],
            ..Scripted::default()
        };
        let (report, statuses) = diagnosed(&checks, &proxy_target(), false);
        assert_eq!(statuses, "FAIL skip skip skip skip skip skip skip");
        assert_eq!(*checks.ran.borrow(), ["credentials"]);
        assert_eq!(
            skip_reason(&report, 3),
            "needs credentials for the RDS API (step 1)"
        );
        assert_eq!(skip_reason(&report, 5), "needs the target (step 3)");
        assert_eq!(report.exit_code, 3);

        // A --host target needs no API: the network and TLS are still checked.
        let checks = Scripted {
            fail: &["credentials"],
            ..Scripted::default()
        };
        let host = Target {
            selector: Selector::Host("db.example".into()),
            ..proxy_target()
        };
        let (report, statuses) = diagnosed(&checks, &host, false);
        assert_eq!(statuses, "FAIL skip skip skip ok ok skip skip");
        assert_eq!(*checks.ran.borrow(), ["credentials", "network", "tls"]);
        assert!(skip_reason(&report, 3).starts_with("--host: no RDS API call"));
        assert_eq!(skip_reason(&report, 4), "needs the region (step 1)");
        assert_eq!(
            skip_reason(&report, 7),
            "needs credentials to sign a token (step 1)"
        );
    }

    #[test]
    fn a_failed_network_skips_what_needs_it_and_keeps_the_rest() {
        let checks = Scripted {
            fail: &["network", "policy"],
            ..Scripted::default()
        };
        let (report, statuses) = diagnosed(&checks, &proxy_target(), false);
        assert_eq!(statuses, "ok ok ok FAIL FAIL skip skip skip");
        assert_eq!(skip_reason(&report, 6), "needs a TCP connection (step 5)");
        assert_eq!(skip_reason(&report, 7), "needs a TLS connection (step 6)");
        assert_eq!(skip_reason(&report, 8), "needs a login (step 7)");
        // The first failure's code: the policy's (3), not the network's (4).
        assert_eq!((report.exit_code, report.failures), (3, 2));
    }

    #[test]
    fn a_tls_failure_on_a_private_address_gets_tunnel_advice_unless_tunnelled() {
        for (tunnelled, advised) in [(false, true), (true, false)] {
            let checks = Scripted {
                fail: &["tls"],
                private: true,
                ..Scripted::default()
            };
            let (report, statuses) = diagnosed(&checks, &proxy_target(), tunnelled);
            assert_eq!(statuses, "ok ok ok ok ok FAIL skip skip");
            let next = report.steps[5].next.join("\n");
            assert_eq!(
                next.contains("--via"),
                advised,
                "tunnelled {tunnelled}: {next}"
            );
        }
    }

    #[test]
    fn an_engine_rdsiam_does_not_serve_skips_tls_and_login() {
        let checks = Scripted {
            served: Some(false),
            ..Scripted::default()
        };
        let (report, statuses) = diagnosed(&checks, &proxy_target(), false);
        assert_eq!(statuses, "ok ok ok ok ok skip skip skip");
        assert!(skip_reason(&report, 6).contains("neither PostgreSQL nor MySQL"));
        assert!(skip_reason(&report, 7).contains("neither PostgreSQL nor MySQL"));
    }

    #[test]
    fn a_refused_login_skips_inside_and_exits_5() {
        let checks = Scripted {
            fail: &["login"],
            ..Scripted::default()
        };
        let (report, statuses) = diagnosed(&checks, &proxy_target(), false);
        assert_eq!(statuses, "ok ok ok ok ok ok FAIL skip");
        assert_eq!(report.exit_code, 5);
    }

    #[test]
    fn keys_are_masked() {
        assert_eq!(mask_key("AKIAIOSFODNN7EXAMPLE"), "AKIA…MPLE");
        assert_eq!(mask_key("short"), "…");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(42), "42 s");
        assert_eq!(human_duration(600), "10 min");
        assert_eq!(human_duration(3900), "65 min");
        assert_eq!(human_duration(3 * 3600 + 300), "3 h 5 min");
        assert_eq!(human_duration(10 * 86400), "10 days");
    }

    #[test]
    fn exit_code_is_the_first_failures_and_strict_fails_warnings() {
        let report = |steps: Vec<Step>, strict| {
            Report {
                schema_version: SCHEMA_VERSION,
                target: Subject::default(),
                steps,
                failures: 0,
                warnings: 0,
                exit_code: 0,
            }
            .finish(strict)
        };
        let r = report(
            vec![
                Step::new(1, "credentials").warn("expiring", "refresh"),
                Step::new(5, "network").fail(Kind::Network, "closed"),
                Step::new(7, "login").fail(Kind::Login, "refused"),
            ],
            false,
        );
        assert_eq!((r.exit_code, r.failures, r.warnings), (4, 2, 1));
        let warn_only = || vec![Step::new(1, "credentials").warn("expiring", "refresh")];
        assert_eq!(report(warn_only(), false).exit_code, 0);
        assert_eq!(report(warn_only(), true).exit_code, 6);
        let text = report(warn_only(), true).render_text();
        assert!(text.contains("warn  1 credentials  expiring"), "{text}");
        assert!(text.contains("next: refresh"), "{text}");
    }
}

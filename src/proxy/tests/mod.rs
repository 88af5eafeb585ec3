//! The proxy's connection handling in-process (issue 18): a client over
//! `tokio::io::duplex`, [`conn::handle`] as the listener would run it, and
//! the database a [`FakeDb`] behind the dialer's [`Transport`], with real
//! TLS and tokens checked as RDS does. Time is paused, so the failover
//! backoff and the 30-second bounds are checked exactly and at once; the
//! process-level tests (tests/integration/proxy*.rs, failover.rs) run the
//! same paths against a real PostgreSQL.

mod fakedb;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncWriteExt, DuplexStream};

use self::fakedb::{Act, Certs, FakeDb, HOST, KEY_ID, PORT, SECRET};
use super::admit::{Admission, Who};
use super::limits::Limits;
use super::log::Log;
use super::tokens::system_clock;
use super::{FailoverSettings, Shared, Upstream, conn, wire};
use crate::aws::Aws;
use crate::ca::Roots;
use crate::connect::Connector;
use crate::endpoint::Endpoint;
use crate::engine::Engine;
use crate::output::LogFormat;
use crate::session::Resolved;
use crate::target::{AwsSettings, Conn, Selector, Target};

const USER: &str = "app";

/// How the proxy under test is set up.
struct Setup {
    writer: bool,
    pinned: Option<&'static str>,
}

const WRITER: Setup = Setup {
    writer: true,
    pinned: Some(USER),
};
const READER: Setup = Setup {
    writer: false,
    pinned: Some(USER),
};

struct Proxy {
    up: Arc<Upstream>,
    shared: Arc<Shared>,
}

fn proxy(certs: &Certs, db: &FakeDb, setup: Setup) -> Proxy {
    let conn = Conn {
        roots: Roots::File(certs.ca_file.path().to_owned()),
        ..Conn::default()
    };
    let connector = Connector::from_args(&conn)
        .expect("connector")
        .with_transport(Arc::new(db.clone()));
    let target = Target {
        selector: Selector::Host(HOST.into()),
        port: Some(PORT),
        engine: None,
        user: USER.into(),
        dbname: None,
        aws: AwsSettings::default(),
    };
    let credentials = aws_credential_types::Credentials::new(KEY_ID, SECRET, None, None, "test");
    let resolved = Resolved {
        target,
        aws: Aws::for_tests(credentials, None),
        endpoint: Endpoint::host(HOST, Some(PORT), Engine::Postgres),
    };
    let up = Upstream::new(
        "test".into(),
        resolved,
        connector,
        setup.pinned.map(str::to_owned),
        system_clock(),
        Duration::from_secs(600),
    )
    .expect("upstream")
    .with_failover(FailoverSettings {
        expect_writer: setup.writer,
        failover_timeout: Duration::from_secs(30),
        login_timeout: Duration::from_secs(30),
    });
    let up = Arc::new(up);
    let log = Log {
        format: LogFormat::Text,
        quiet: true,
    };
    let shared = Shared::new(Limits::new(10, 200), log, vec![up.clone()])
        .with_admission(Admission::new(Vec::new(), true));
    Proxy {
        up,
        shared: Arc::new(shared),
    }
}

fn me() -> u32 {
    nix::unistd::geteuid().as_raw()
}

impl Proxy {
    /// A client connection, served as the accept loop would serve it.
    fn client(&self) -> DuplexStream {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let pending = Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .expect("permit");
        self.shared.tracker.spawn(conn::handle(
            theirs,
            "test-client".into(),
            Who::Unix(Some(me())),
            self.up.clone(),
            self.shared.clone(),
            pending,
        ));
        ours
    }

    /// A client that logs in as `user`: what it was answered, up to
    /// ReadyForQuery or an ErrorResponse.
    async fn login(&self, user: &str) -> (DuplexStream, Vec<(u8, Vec<u8>)>) {
        let mut client = self.client();
        let mut buf = BytesMut::new();
        frontend::startup_message([("user", user), ("database", "appdb")], &mut buf)
            .expect("startup");
        client.write_all(&buf).await.expect("send startup");
        let answer = until_ready(&mut client).await;
        (client, answer)
    }
}

/// Messages up to ReadyForQuery, an ErrorResponse, or the end. A proxy
/// that answers nothing within two (paused, so instant) minutes fails the
/// test instead of hanging it.
async fn until_ready(client: &mut DuplexStream) -> Vec<(u8, Vec<u8>)> {
    let mut got = Vec::new();
    let read = async {
        while let Ok(raw) = wire::read_message(client, 1 << 20).await {
            let tag = raw[0];
            got.push((tag, raw[5..].to_vec()));
            if tag == b'Z' || tag == b'E' {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the proxy answered within 120 s");
    got
}

fn tags(messages: &[(u8, Vec<u8>)]) -> String {
    messages.iter().map(|(tag, _)| *tag as char).collect()
}

/// An ErrorResponse's field, e.g. `C` (the SQLSTATE) or `M`.
fn field(messages: &[(u8, Vec<u8>)], name: u8) -> String {
    let Some((_, body)) = messages.iter().find(|(tag, _)| *tag == b'E') else {
        return String::new();
    };
    body.split(|b| *b == 0)
        .find(|f| f.first() == Some(&name))
        .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
        .unwrap_or_default()
}

async fn query(client: &mut DuplexStream, sql: &str) -> Vec<(u8, Vec<u8>)> {
    let mut buf = BytesMut::new();
    frontend::query(sql, &mut buf).expect("query");
    client.write_all(&buf).await.expect("send query");
    until_ready(client).await
}

#[tokio::test(start_paused = true)]
async fn a_login_is_relayed_with_a_token_rds_accepts_and_the_token_stays_upstream() {
    let certs = Certs::new();
    let db = FakeDb::new(&certs, &[], Act::Serve);
    let proxy = proxy(&certs, &db, READER);

    let (mut client, greeting) = proxy.login(USER).await;
    assert_eq!(tags(&greeting), "RSSSKZ", "{greeting:?}");
    let answer = query(&mut client, "select 42").await;
    assert_eq!(tags(&answer), "TDCZ");
    assert!(
        answer.iter().any(|(_, body)| body.ends_with(b"select 42")),
        "{answer:?}"
    );
    client.write_all(&[b'X', 0, 0, 0, 4]).await.expect("bye");

    let seen = db.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].user.as_str(), seen[0].database.as_str()),
        (USER, "appdb")
    );
    assert_eq!(seen[0].token_ok, Some(Ok(())), "token {:?}", seen[0].token);
    let everything: Vec<u8> = greeting
        .iter()
        .chain(&answer)
        .flat_map(|(_, b)| b.clone())
        .collect();
    assert!(
        !String::from_utf8_lossy(&everything).contains("X-Amz-Signature"),
        "the token reached the client"
    );
}

#[tokio::test(start_paused = true)]
async fn the_second_client_logs_in_with_the_cached_token() {
    let certs = Certs::new();
    let db = FakeDb::new(&certs, &[], Act::Serve);
    let proxy = proxy(&certs, &db, READER);
    for _ in 0..2 {
        let (_client, greeting) = proxy.login(USER).await;
        assert_eq!(tags(&greeting), "RSSSKZ");
    }
    let seen = db.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].token, seen[1].token);
    assert_eq!(proxy.shared.metrics.tokens_minted.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_writer_login_rides_out_a_failover_with_backoff() {
    let certs = Certs::new();
    // The old writer shuts down, nothing answers, the standby is still
    // read-only, then the promoted one takes the login.
    let script = [Act::Shutdown, Act::Unreachable, Act::Standby, Act::Serve];
    let db = FakeDb::new(&certs, &script, Act::Serve);
    let proxy = proxy(&certs, &db, WRITER);

    let started = tokio::time::Instant::now();
    let (mut client, greeting) = proxy.login(USER).await;
    let waited = started.elapsed();
    assert_eq!(tags(&greeting), "RSSSKZ", "{greeting:?}");
    assert_eq!(tags(&query(&mut client, "insert").await), "TDCZ");
    assert_eq!(db.opened(), 4);
    // Backoff 0.1 s, 0.2 s, 0.4 s between the four attempts.
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_millis(800),
        "waited {waited:?}"
    );
    let metrics = &proxy.shared.metrics;
    assert_eq!(metrics.failovers.get(), 1);
    assert_eq!(metrics.logins_retried.get(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_reader_target_passes_a_shutdown_on_without_retrying() {
    let certs = Certs::new();
    let db = FakeDb::new(&certs, &[Act::Shutdown], Act::Serve);
    let proxy = proxy(&certs, &db, READER);
    let (_client, answer) = proxy.login(USER).await;
    assert_eq!(tags(&answer), "E");
    assert_eq!(field(&answer, b'C'), "57P01");
    assert_eq!(db.opened(), 1);
}

#[tokio::test(start_paused = true)]
async fn no_writer_within_the_failover_timeout_is_a_fatal_that_says_so() {
    let certs = Certs::new();
    let db = FakeDb::new(&certs, &[], Act::Standby);
    let proxy = proxy(&certs, &db, WRITER);

    let started = tokio::time::Instant::now();
    let (_client, answer) = proxy.login(USER).await;
    let waited = started.elapsed();
    assert_eq!(field(&answer, b'C'), "08006", "{answer:?}");
    let message = field(&answer, b'M');
    assert!(message.contains("no writer at"), "{message}");
    assert!(message.contains("for 30s"), "{message}");
    assert!(message.contains("read-only"), "{message}");
    assert!(
        waited >= Duration::from_secs(29) && waited <= Duration::from_secs(30),
        "waited {waited:?}"
    );
    // 0.1 + 0.2 + 0.4, then every 0.5 s: about 60 attempts, not a tight loop.
    assert!((55..=65).contains(&db.opened()), "{} attempts", db.opened());
}

#[tokio::test(start_paused = true)]
async fn a_refused_token_is_dropped_and_the_login_retried_once_fresh() {
    let certs = Certs::new();
    let db = FakeDb::new(&certs, &[Act::RefuseToken], Act::Serve);
    let proxy = proxy(&certs, &db, READER);
    let (_client, greeting) = proxy.login(USER).await;
    assert_eq!(tags(&greeting), "RSSSKZ", "{greeting:?}");
    assert_eq!(db.opened(), 2);
    let metrics = &proxy.shared.metrics;
    assert_eq!(metrics.tokens_dropped.get(), 1);
    assert_eq!(metrics.tokens_minted.get(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_user_refused_three_times_is_answered_from_the_count() {
    let certs = Certs::new();
    let db = FakeDb::new(&certs, &[], Act::RefuseToken);
    let proxy = proxy(&certs, &db, READER);
    for round in 1..=3 {
        let (_client, answer) = proxy.login(USER).await;
        assert_eq!(field(&answer, b'C'), "28P01", "round {round}: {answer:?}");
        let message = field(&answer, b'M');
        assert!(message.contains("PAM authentication failed"), "{message}");
        // The first try and the one with a fresh token.
        assert_eq!(db.opened(), round * 2);
    }
    let (_client, answer) = proxy.login(USER).await;
    let message = field(&answer, b'M');
    assert_eq!(field(&answer, b'C'), "28P01");
    assert!(
        message.contains("refused the IAM login for `app` 3 times in a row"),
        "{message}"
    );
    assert_eq!(db.opened(), 6, "the database was asked again");
}

#[tokio::test(start_paused = true)]
async fn a_server_that_never_answers_the_login_is_given_up_on_naming_the_stage() {
    let certs = Certs::new();
    let db = FakeDb::new(&certs, &[], Act::Stall);
    let proxy = proxy(&certs, &db, READER);
    let started = tokio::time::Instant::now();
    let (_client, answer) = proxy.login(USER).await;
    let waited = started.elapsed();
    assert_eq!(field(&answer, b'C'), "08006");
    let message = field(&answer, b'M');
    assert!(
        message.contains("did not answer the login within 30s (TCP and TLS worked)"),
        "{message}"
    );
    assert!(waited >= Duration::from_secs(30), "waited {waited:?}");
    assert!(waited < Duration::from_secs(31), "waited {waited:?}");
    assert_eq!(db.opened(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_server_is_08006_at_once_for_a_reader_target() {
    let certs = Certs::new();
    let db = FakeDb::new(&certs, &[], Act::Unreachable);
    let proxy = proxy(&certs, &db, READER);
    let started = tokio::time::Instant::now();
    let (_client, answer) = proxy.login(USER).await;
    assert_eq!(field(&answer, b'C'), "08006");
    assert!(field(&answer, b'M').contains("cannot connect to"));
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(db.opened(), 1);
}

#[tokio::test(start_paused = true)]
async fn another_user_than_the_pinned_one_is_refused_before_any_dial() {
    let certs = Certs::new();
    let db = FakeDb::new(&certs, &[], Act::Serve);
    let proxy = proxy(&certs, &db, READER);
    let (_client, answer) = proxy.login("mallory").await;
    assert_eq!(field(&answer, b'C'), "28000");
    assert!(field(&answer, b'M').contains("logs in only as `app`, not `mallory`"));
    assert_eq!(db.opened(), 0);
    assert_eq!(proxy.shared.metrics.tokens_minted.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cancel_reaches_the_server_only_with_a_key_the_proxy_handed_out() {
    let certs = Certs::new();
    let db = FakeDb::new(&certs, &[], Act::Serve);
    let proxy = proxy(&certs, &db, READER);
    let (_session, greeting) = proxy.login(USER).await;
    let (_, key) = greeting
        .iter()
        .find(|(tag, _)| *tag == b'K')
        .expect("BackendKeyData");
    let pid = i32::from_be_bytes([key[0], key[1], key[2], key[3]]);

    for (secret, reaches) in [(&key[4..], true), (&[9u8, 9, 9, 9][..], false)] {
        let before = db.opened();
        let mut client = proxy.client();
        let mut request = vec![0, 0, 0, 16];
        request.extend_from_slice(&80_877_102i32.to_be_bytes());
        request.extend_from_slice(&pid.to_be_bytes());
        request.extend_from_slice(secret);
        client.write_all(&request).await.expect("cancel");
        // The proxy closes the client's side once it has forwarded (or not).
        let mut rest = Vec::new();
        let closed = tokio::io::AsyncReadExt::read_to_end(&mut client, &mut rest);
        tokio::time::timeout(Duration::from_secs(120), closed)
            .await
            .expect("the proxy closed the cancel connection within 120 s")
            .expect("read");
        assert_eq!(db.opened() > before, reaches, "key {secret:?}");
    }
    let cancels: Vec<_> = db.seen().into_iter().filter_map(|s| s.cancel).collect();
    assert_eq!(cancels, vec![(pid, key[4..].to_vec())]);
}

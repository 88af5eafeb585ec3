//! Credentials the way pods get them, end to end through `rdsiam proxy` and
//! the IAM gate, from local fakes that hand out short-lived credentials:
//! the container credentials endpoint (ECS task roles, EKS Pod Identity),
//! STS AssumeRoleWithWebIdentity (EKS IRSA), and `aws login` profiles. The
//! proxy outlives each set of credentials several times over, idle, and
//! stays ready and able to log clients in.

use std::process::Command;
use std::time::{Duration, Instant};

use rdsiam_testkit::creds::{self, CredsServer};
use rdsiam_testkit::gate::{Gate, GateConfig};

use crate::db::{ca_file, postgres};
use crate::proxy::{Proxy, http_get, psql};
use crate::support::{Env, REGION, closed_port, output_within, run};

/// How long the fakes' credentials live.
const LIFETIME: Duration = Duration::from_secs(4);

/// A gate at `localhost` that knows every credential the fakes hand out.
fn gate() -> Gate {
    let mut cfg = GateConfig::new(postgres());
    cfg.endpoint_host = "localhost".to_owned();
    cfg.credentials.extend(creds::gate_credentials());
    Gate::start(cfg).expect("gate starts")
}

/// `rdsiam proxy` at the gate with no credentials of its own in the
/// environment: (command, listen port, http port).
fn proxy_cmd(env: &Env, gate: &Gate) -> (Command, u16, u16) {
    let (port, http) = (closed_port(), closed_port());
    let mut cmd = env.bare();
    cmd.args(["proxy", "--host", "localhost", "--port"])
        .arg(gate.port().to_string())
        .args([
            "--region",
            REGION,
            "--user",
            "iamuserapp",
            "--dbname",
            "app",
        ])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--http-address")
        .arg(format!("127.0.0.1:{http}"))
        .arg("--ca-bundle")
        .arg(ca_file(env, gate));
    (cmd, port, http)
}

fn query(env: &Env, port: u16) -> (i32, String) {
    let out = output_within(
        psql(env).args([
            &format!("host=127.0.0.1 port={port} user=iamuserapp dbname=app sslmode=disable connect_timeout=20"),
            "-XtAc",
            "select current_user",
        ]),
        60,
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

/// Let the proxy idle through three credential lifetimes, checking it stays
/// ready all the while (so a quiet sidecar is never taken out of service),
/// then log in again with credentials issued after the first expired.
fn outlive_credentials(env: &Env, proxy: &Proxy, server: &CredsServer, port: u16, http: u16) {
    assert_eq!(
        query(env, port),
        (0, "iamuserapp".to_owned()),
        "{}",
        proxy.stderr()
    );
    let first = server.handed_out();
    assert!(first >= 1);
    let until = Instant::now() + LIFETIME * 3;
    while Instant::now() < until {
        let (status, body) = http_get(http, "/readiness");
        assert_eq!(
            status,
            200,
            "readiness while idle: {body}\n{}",
            proxy.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        server.handed_out() >= first + 2,
        "renewed while idle: {} after {first}",
        server.handed_out()
    );
    assert_eq!(
        query(env, port),
        (0, "iamuserapp".to_owned()),
        "{}",
        proxy.stderr()
    );
    assert!(
        !proxy.stderr().contains("testsecret"),
        "no secret in the log"
    );
}

#[test]
fn the_container_credentials_endpoint_serves_the_proxy_past_their_expiry() {
    let env = Env::new();
    let gate = gate();
    let auth = "pod-identity-token-0123456789";
    let server = CredsServer::container(LIFETIME, Some(auth)).unwrap();
    let token_file = env.home().join("eks-pod-identity-token");
    std::fs::write(&token_file, auth).unwrap();
    let (mut cmd, port, http) = proxy_cmd(&env, &gate);
    cmd.env(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        format!("{}/v1/credentials", server.url()),
    )
    .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file);
    let proxy = Proxy::start(cmd, 1);
    outlive_credentials(&env, &proxy, &server, port, http);
    let seen = server.seen();
    assert!(
        seen.iter()
            .all(|s| s.path == "/v1/credentials" && s.authorization.as_deref() == Some(auth)),
        "{seen:?}"
    );
}

#[test]
fn eks_irsa_web_identity_gets_credentials_from_sts_and_renews_them() {
    let env = Env::new();
    let gate = gate();
    let sts = CredsServer::sts(LIFETIME).unwrap();
    let token_file = env.home().join("eks.amazonaws.com/serviceaccount/token");
    std::fs::create_dir_all(token_file.parent().unwrap()).unwrap();
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.test-projected-token.sig").unwrap();
    let role = "arn:aws:iam::123456789012:role/orders-app-rds-connect";
    let (mut cmd, port, http) = proxy_cmd(&env, &gate);
    // What the EKS pod identity webhook injects, plus the fake's address.
    cmd.env("AWS_ROLE_ARN", role)
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file)
        .env("AWS_ROLE_SESSION_NAME", "rdsiam-sidecar")
        .env("AWS_ENDPOINT_URL_STS", sts.url());
    let proxy = Proxy::start(cmd, 1);
    outlive_credentials(&env, &proxy, &sts, port, http);
    let seen = sts.seen();
    let body = &seen[0].body;
    assert!(body.contains("Action=AssumeRoleWithWebIdentity"), "{body}");
    assert!(
        body.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Forders-app-rds-connect"),
        "{body}"
    );
    assert!(
        body.contains("WebIdentityToken=eyJhbGciOiJSUzI1NiJ9.test-projected-token.sig"),
        "{body}"
    );
    assert!(body.contains("RoleSessionName=rdsiam-sidecar"), "{body}");
}

#[test]
fn aws_login_profiles_sign_with_the_cached_session() {
    let env = Env::new();
    let gate = gate();
    let session = "arn:aws:iam::123456789012:user/jane";
    env.aws_file(
        "config",
        &format!("[profile dev]\nlogin_session = {session}\nregion = {REGION}\n"),
    );
    // What `aws login` leaves in its cache: credentials good for hours.
    let (id, secret, token) = creds::issued(150);
    let expires = creds::rfc3339(std::time::SystemTime::now() + Duration::from_secs(3600));
    let name = {
        let out = Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(session.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        String::from_utf8(out.stdout).unwrap()[..64].to_owned()
    };
    let cache = env.home().join(".aws/login/cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(
        cache.join(format!("{name}.json")),
        format!(
            r#"{{"accessToken":{{"accessKeyId":"{id}","secretAccessKey":"{secret}","sessionToken":"{token}","accountId":"123456789012","expiresAt":"{expires}"}},"tokenType":"aws_sigv4","refreshToken":"refresh-token","idToken":"id-token","clientId":"arn:aws:signin:::devtools/same-device","dpopKey":"-----BEGIN EC PRIVATE KEY-----\ntest\n-----END EC PRIVATE KEY-----\n"}}"#
        ),
    )
    .unwrap();
    let mut cmd = env.bare();
    cmd.args(["check", "--profile", "dev", "--host", "localhost", "--port"])
        .arg(gate.port().to_string())
        .args(["-U", "iamuserapp", "-d", "app", "--ca-bundle"])
        .arg(ca_file(&env, &gate));
    let r = run(&mut cmd);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("logged in as iamuserapp"), "{}", r.stdout);
}

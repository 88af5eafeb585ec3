//! Test-only: run by `pam_exec.so expose_authtok` for the MariaDB test server's IAM users
//! (testkit `mariadb`). Reads the password from stdin and accepts it only if it is an IAM
//! token RDS would accept for `$PAM_USER`: host and port among `--hosts`/`--ports`, signed
//! with the test secret for `--region`, not expired. Exit 0 accepts; anything else refuses,
//! and the server answers ERROR 1045. Each verdict is appended to `--log` (user and reason,
//! never the token).

use std::io::{Read, Write};

use rdsiam_testkit::gate::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, verify_token};

fn main() {
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    let mut region = String::from(rdsiam_testkit::gate::TEST_REGION);
    let mut log = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_default();
        match arg.as_str() {
            "--hosts" => hosts = value.split(',').map(str::to_owned).collect(),
            "--ports" => ports = value.split(',').filter_map(|p| p.parse().ok()).collect(),
            "--region" => region = value,
            "--log" => log = Some(value),
            _ => std::process::exit(2),
        }
    }
    let user = std::env::var("PAM_USER").unwrap_or_default();
    let mut input = Vec::new();
    let _ = std::io::stdin().take(64 * 1024).read_to_end(&mut input);
    // pam_exec writes the password with its NUL.
    while matches!(input.last(), Some(0 | b'\n')) {
        input.pop();
    }
    let token = String::from_utf8_lossy(&input);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let credentials = [(
        TEST_ACCESS_KEY_ID.to_owned(),
        TEST_SECRET_ACCESS_KEY.to_owned(),
        None,
    )];
    // The token names one host:port; try it against each allowed pair and keep the most
    // telling refusal (a wrong host says less than a bad signature for the right one).
    let mut verdict: Result<(), &str> = Err("no-endpoint-allowed");
    'all: for host in &hosts {
        for port in &ports {
            match verify_token(&token, &user, host, *port, &region, &credentials, now) {
                Ok(()) => {
                    verdict = Ok(());
                    break 'all;
                }
                Err(reason @ ("wrong-host" | "wrong-port")) if verdict.is_err() => {
                    if verdict == Err("no-endpoint-allowed") {
                        verdict = Err(reason);
                    }
                }
                Err(reason) => verdict = Err(reason),
            }
        }
    }
    if let Some(path) = log
        && let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(file, "{user} {}", verdict.err().unwrap_or("ok"));
    }
    std::process::exit(if verdict.is_ok() { 0 } else { 1 });
}

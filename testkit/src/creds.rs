//! Where pods get AWS credentials, played locally with short lives so a test
//! can outlast them:
//!
//! - [`CredsServer::container`]: the container credentials endpoint that ECS
//!   task roles and EKS Pod Identity use (`AWS_CONTAINER_CREDENTIALS_FULL_URI`,
//!   with the `Authorization` header from `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`);
//! - [`CredsServer::sts`]: STS `AssumeRoleWithWebIdentity`, which EKS IRSA
//!   (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`) calls, with the answer
//!   shape AWS gives.
//!
//! Each answer hands out the next of a fixed series of credentials
//! ([`issued`]), expiring `lifetime` from now, so the IAM gate can be told
//! all of them up front and a test can tell which one signed a token.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How many credentials a server can hand out.
pub const SERIES: usize = 200;

/// The `n`th credentials of the series: (access key id, secret, session token).
pub fn issued(n: usize) -> (String, String, String) {
    (
        format!("ASIATESTCREDS{n:07}"),
        format!("testsecret/{n:030}"),
        format!("testsessiontoken{n:06}"),
    )
}

/// The whole series, as the IAM gate's `credentials`.
pub fn gate_credentials() -> Vec<(String, String, Option<String>)> {
    (0..SERIES)
        .map(|n| {
            let (id, secret, token) = issued(n);
            (id, secret, Some(token))
        })
        .collect()
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Container,
    Sts,
}

/// A running fake; stops when dropped.
pub struct CredsServer {
    port: u16,
    next: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl CredsServer {
    /// The container credentials endpoint: GET any path; when `authorization`
    /// is given, requests without exactly that header get 401.
    pub fn container(lifetime: Duration, authorization: Option<&str>) -> std::io::Result<Self> {
        Self::start(Kind::Container, lifetime, authorization.map(str::to_owned))
    }

    /// STS's Query API for `AssumeRoleWithWebIdentity` (unsigned, as that call is).
    pub fn sts(lifetime: Duration) -> std::io::Result<Self> {
        Self::start(Kind::Sts, lifetime, None)
    }

    fn start(kind: Kind, lifetime: Duration, auth: Option<String>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let next = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (n, s, st) = (next.clone(), seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (n, s, auth) = (n.clone(), s.clone(), auth.clone());
                        std::thread::spawn(move || {
                            let _ = answer(stream, kind, lifetime, auth.as_deref(), &n, &s);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(CredsServer {
            port,
            next,
            seen,
            stop,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many credentials have been handed out.
    pub fn handed_out(&self) -> usize {
        self.next.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for CredsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn answer(
    stream: TcpStream,
    kind: Kind,
    lifetime: Duration,
    auth: Option<&str>,
    next: &AtomicUsize,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or("").to_owned();
    let path = words.next().unwrap_or("").to_owned();
    let mut length = 0usize;
    let mut authorization = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => authorization = Some(value.trim().to_owned()),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length.min(1 << 20)];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).into_owned();
    seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path,
        authorization: authorization.clone(),
        body: body.clone(),
    });
    let mut out = stream;
    if auth.is_some() && authorization.as_deref() != auth {
        return reply(
            &mut out,
            401,
            "application/json",
            "{\"code\":\"Unauthorized\"}",
        );
    }
    let expiration = rfc3339(SystemTime::now() + lifetime);
    match kind {
        Kind::Container => {
            let n = next.fetch_add(1, Ordering::SeqCst) % SERIES;
            let (id, secret, token) = issued(n);
            let json = format!(
                "{{\"AccessKeyId\":\"{id}\",\"SecretAccessKey\":\"{secret}\",\"Token\":\"{token}\",\"Expiration\":\"{expiration}\",\"RoleArn\":\"arn:aws:iam::123456789012:role/orders-app\"}}"
            );
            reply(&mut out, 200, "application/json", &json)
        }
        Kind::Sts => {
            if method != "POST" || !body.contains("Action=AssumeRoleWithWebIdentity") {
                return reply(
                    &mut out,
                    400,
                    "text/xml",
                    "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>only AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>",
                );
            }
            let n = next.fetch_add(1, Ordering::SeqCst) % SERIES;
            let (id, secret, token) = issued(n);
            let xml = format!(
                "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
<AssumeRoleWithWebIdentityResult>\
<SubjectFromWebIdentityToken>system:serviceaccount:orders:orders-app</SubjectFromWebIdentityToken>\
<Audience>sts.amazonaws.com</Audience>\
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/orders-app/rdsiam</Arn><AssumedRoleId>AROATESTROLE:rdsiam</AssumedRoleId></AssumedRoleUser>\
<Credentials><SessionToken>{token}</SessionToken><SecretAccessKey>{secret}</SecretAccessKey><Expiration>{expiration}</Expiration><AccessKeyId>{id}</AccessKeyId></Credentials>\
<Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/TEST</Provider>\
</AssumeRoleWithWebIdentityResult>\
<ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>\
</AssumeRoleWithWebIdentityResponse>"
            );
            reply(&mut out, 200, "text/xml", &xml)
        }
    }
}

fn reply(out: &mut TcpStream, status: u16, kind: &str, body: &str) -> std::io::Result<()> {
    let reason = if status == 200 { "OK" } else { "Error" };
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}

/// `2026-12-03T09:00:00Z`
pub fn rfc3339(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_764_752_400)),
            "2025-12-03T09:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }
}

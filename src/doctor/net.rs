//! Steps 5 and 6: DNS and TCP to the endpoint (or `--via`), with the SSM
//! port-forwarding command when a private address is out of reach; then the
//! TLS handshake on that same connection, which root set vouched for the
//! server's chain, and how long its certificate has left.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustls::CertificateError;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{Step, human_duration, rfc3339};
use crate::ca::Roots;
use crate::connect::Connector;
use crate::endpoint::{Endpoint, EndpointKind};
use crate::engine::Engine;
use crate::error::Kind;
use crate::tls::SslMode;
use crate::tls::{self, Vouched};

/// The local port the SSM advice forwards to.
const LOCAL_PORT: u16 = 15432;
/// Warn when the server certificate has less than this left.
const CERT_WARN_DAYS: u64 = 30;

/// RFC 1918, link-local, CGNAT and IPv6 unique-local: addresses only a VPC
/// (or a VPN into it) reaches.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private() || v4.is_link_local() || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The command that opens a tunnel into the VPC through a bastion.
pub fn ssm_command(host: &str, port: u16) -> String {
    format!(
        "aws ssm start-session --target <instance-id of a bastion in the VPC> --document-name AWS-StartPortForwardingSessionToRemoteHost --parameters '{{\"host\":[\"{host}\"],\"portNumber\":[\"{port}\"],\"localPortNumber\":[\"{LOCAL_PORT}\"]}}'"
    )
}

/// A private address out of reach: the tunnel to open and the `--via` to add.
pub fn tunnel_advice(step: Step, endpoint: &Endpoint) -> Step {
    let host = &endpoint.host;
    step.then(format!(
        "{host} has only private addresses, reachable from inside its VPC; from outside, open a tunnel through a bastion: {}",
        ssm_command(host, endpoint.port)
    ))
    .then(format!(
        "then add --via 127.0.0.1:{LOCAL_PORT} to this command (the token and TLS still name {host})"
    ))
}

/// Step 5. The connection is handed to step 6.
pub async fn network(endpoint: &Endpoint, connector: &Connector) -> (Step, Option<TcpStream>) {
    let step = Step::new(5, "network");
    let (host, port) = (endpoint.host.as_str(), endpoint.port);
    let deadline = connector.timeout;
    // Through a tunnel the far end resolves the name (often to a private
    // address only the VPC reaches); here only the tunnel's address matters.
    let answer: Result<Vec<SocketAddr>, String> = if connector.via.is_some() {
        Ok(Vec::new())
    } else {
        match tokio::time::timeout(deadline, tokio::net::lookup_host((host, port))).await {
            Err(_) => Err(format!("no DNS answer within {}s", deadline.as_secs())),
            Ok(Err(err)) => Err(err.to_string()),
            Ok(Ok(addrs)) => Ok(addrs.collect()),
        }
    };
    let addresses: Vec<String> = answer
        .as_ref()
        .map(|a| a.iter().map(|s| s.ip().to_string()).collect())
        .unwrap_or_default();
    let private = answer
        .as_ref()
        .is_ok_and(|a| !a.is_empty() && a.iter().all(|s| is_private(s.ip())));
    let mut step = step
        .detail("host", host)
        .detail("addresses", &addresses)
        .detail("private", private)
        .detail("via", connector.via.as_ref().map(ToString::to_string));
    let dns = match (&answer, private) {
        _ if connector.via.is_some() => format!("{host} is resolved at the tunnel's far end"),
        (Ok(_), true) => format!("{host} is {} (private)", addresses.join(", ")),
        (Ok(_), false) => format!("{host} is {}", addresses.join(", ")),
        (Err(err), _) => format!("{host} does not resolve here ({err})"),
    };

    // Where TCP goes: the tunnel when there is one, else the addresses.
    let dial: Vec<SocketAddr> = match &connector.via {
        Some(via) => {
            let lookup = tokio::net::lookup_host((via.host.as_str(), via.port));
            let answer = tokio::time::timeout(deadline, lookup)
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::other(format!(
                        "no DNS answer within {}s",
                        deadline.as_secs()
                    )))
                });
            match answer {
                Ok(addrs) => addrs.collect(),
                Err(err) => {
                    return (
                    step.fail(Kind::Network, format!("{dns}; --via {via} does not resolve: {err}"))
                        .then("pass --via ADDR:PORT where the tunnel listens, e.g. --via 127.0.0.1:15432"),
                    None,
                );
                }
            }
        }
        None => match &answer {
            Ok(addrs) if !addrs.is_empty() => addrs.clone(),
            _ => {
                return (
                    step.fail(Kind::Network, dns).then(
                        "check the host name (`rdsiam list` shows the endpoints); a name that resolves only inside the VPC needs a tunnel: run it there, or tunnel in and pass --via 127.0.0.1:PORT",
                    ),
                    None,
                );
            }
        },
    };
    let started = Instant::now();
    let mut last_error = None;
    for addr in &dial {
        let left = deadline.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                step = step
                    .detail("connected_to", addr.to_string())
                    .detail("connect_ms", ms);
                let route = match &connector.via {
                    Some(via) => format!("TCP via {via} ({addr}) in {ms} ms"),
                    None => format!("TCP to {addr} in {ms} ms"),
                };
                let inside = if private && connector.via.is_none() {
                    " (a private address that answers: inside the VPC or on a VPN)"
                } else {
                    ""
                };
                return (step.ok(format!("{dns}; {route}{inside}")), Some(stream));
            }
            Ok(Err(err)) => last_error = Some((addr, err.to_string(), err.kind())),
            Err(_) => {
                last_error = Some((
                    addr,
                    format!("no answer within {}s", deadline.as_secs()),
                    std::io::ErrorKind::TimedOut,
                ));
                break;
            }
        }
    }
    step = step.detail("connected_to", None::<String>);
    let (addr, err, kind) = last_error
        .map(|(a, e, k)| (a.to_string(), e, k))
        .unwrap_or_else(|| {
            (
                "(no address)".into(),
                "nothing to dial".into(),
                std::io::ErrorKind::NotFound,
            )
        });
    let found = format!("{dns}; cannot connect to {addr}: {err}");
    let step = step.fail(Kind::Network, found);
    let step = match &connector.via {
        Some(via) => step.then(format!(
            "is the tunnel running and listening on {via}? Start it with: {}",
            ssm_command(host, port)
        )),
        None if private => tunnel_advice(step, endpoint),
        None if kind == std::io::ErrorKind::ConnectionRefused => step.then(format!(
            "nothing listens on port {port} there: check --port (RDS and RDS Proxy use 5432 unless set otherwise)"
        )),
        None => step.then(
            "a security group or network ACL drops the connection: allow this address to port in the endpoint's security group, or tunnel in and pass --via 127.0.0.1:PORT",
        ),
    };
    (step, None)
}

/// Step 6, on step 5's connection.
pub async fn tls(stream: TcpStream, endpoint: &Endpoint, connector: &Connector) -> Step {
    let step = Step::new(6, "tls").detail("sslmode", connector.sslmode.as_str());
    let fallback = step.clone();
    match tokio::time::timeout(connector.timeout, handshake(step, stream, endpoint, connector)).await {
        Ok(step) => step,
        Err(_) => fallback
            .fail(
                Kind::Network,
                format!("no TLS answer within {}s", connector.timeout.as_secs()),
            )
            .then("check that --port/--via point at the database, and raise --connect-timeout on a slow link"),
    }
}

/// What fails before a TLS handshake: what was found, what to do.
type Refused = (String, String);

const NO_TLS_NEXT: &str =
    "RDS and RDS Proxy always offer TLS: check that --port/--via point at the database";

/// PostgreSQL's SSLRequest, answered `S`: the one dialer's.
async fn postgres_prelude(stream: &mut TcpStream, endpoint: &Endpoint) -> Result<(), Refused> {
    let at = format!("{}:{}", endpoint.host, endpoint.port);
    crate::dial::ssl_request(stream, &at)
        .await
        .map_err(|failure| {
            (
                failure.message,
                failure.hints.into_iter().next().unwrap_or_default(),
            )
        })
}

/// MySQL's greeting, then an SSLRequest if the server offers TLS.
async fn mysql_prelude(stream: &mut TcpStream) -> Result<(), Refused> {
    match crate::mysql::wire::request_tls(stream).await {
        Ok(greeting) if greeting.offers_tls() => Ok(()),
        Ok(greeting) => Err((
            format!("the server (MySQL {}) does not offer TLS", greeting.version),
            NO_TLS_NEXT.to_owned(),
        )),
        Err(err) => Err((
            format!(
                "the server did not greet as MySQL: {}",
                crate::mysql::wire::describe(&err)
            ),
            "check that --port/--via point at the database (`--engine postgres` for a PostgreSQL --host target)".to_owned(),
        )),
    }
}

async fn handshake(
    step: Step,
    mut stream: TcpStream,
    endpoint: &Endpoint,
    connector: &Connector,
) -> Step {
    let host = endpoint.host.clone();
    let prelude = match endpoint.family {
        Engine::Postgres => postgres_prelude(&mut stream, endpoint).await,
        Engine::Mysql => mysql_prelude(&mut stream).await,
    };
    if let Err((found, next)) = prelude {
        let step = step.fail(Kind::Network, found);
        return if next.is_empty() {
            step
        } else {
            step.then(next)
        };
    }
    // Encrypt without verifying, so the chain can be examined (and reported
    // when untrusted); then verify it exactly as a connection would.
    let config = match tls::client_config(SslMode::Require, &connector.roots) {
        Ok(config) => config,
        Err(err) => return step.fail_with(&err),
    };
    let Ok(name) = ServerName::try_from(host.clone()) else {
        return step.fail(
            Kind::Other,
            format!("`{host}` is not a valid TLS server name"),
        );
    };
    let started = Instant::now();
    let mut tls_stream = match tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
    {
        Ok(s) => s,
        Err(err) => {
            return step
                .fail(Kind::Network, format!("TLS handshake failed: {err}"))
                .then("check that nothing between here and the database intercepts TLS");
        }
    };
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (_, conn) = tls_stream.get_ref();
    let chain: Vec<CertificateDer<'static>> = conn
        .peer_certificates()
        .map(<[_]>::to_vec)
        .unwrap_or_default();
    let version = conn.protocol_version().map(|v| match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        other => format!("{other:?}"),
    });
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()));
    let _ = tls_stream.shutdown().await;
    let verdict = tls::verify_chain(connector.sslmode, &connector.roots, &chain, &endpoint.host);
    let leaf = chain.first().and_then(|c| CertInfo::parse(c));
    let anchor = chain
        .last()
        .and_then(|c| CertInfo::parse(c))
        .map(|c| c.issuer_cn);
    let (roots, sslmode) = (&connector.roots, connector.sslmode);
    let mut step = step
        .detail("handshake_ms", ms)
        .detail("version", &version)
        .detail("cipher", &cipher)
        .detail(
            "certificate_subject",
            leaf.as_ref().map(|l| l.subject_cn.clone()),
        )
        .detail(
            "certificate_issuer",
            leaf.as_ref().map(|l| l.issuer_cn.clone()),
        )
        .detail(
            "certificate_not_after",
            leaf.as_ref().map(|l| rfc3339(l.not_after)),
        )
        .detail("anchor", &anchor);
    let proto = format!(
        "{} {}",
        version.as_deref().unwrap_or("TLS"),
        cipher.as_deref().unwrap_or("")
    );
    let vouched = match verdict {
        Err(err) => return step.fail_with(&err),
        Ok(Ok(v)) => v,
        Ok(Err(err)) => {
            step = step.detail("trusted_by", None::<String>);
            return untrusted(
                step,
                &err,
                roots,
                sslmode,
                &host,
                leaf.as_ref(),
                anchor.as_deref(),
            );
        }
    };
    let anchor_cn = anchor.clone().unwrap_or_else(|| "unknown".into());
    let (trusted_by, said) = match (vouched, roots) {
        (Vouched::NotChecked, _) => ("none", "not verified (--sslmode require)".to_owned()),
        (Vouched::System, _) => (
            "system",
            format!("trusted by the system store (`{anchor_cn}`)"),
        ),
        (Vouched::Primary, Roots::File(path)) => (
            "ca-bundle",
            format!("trusted by --ca-bundle {} (`{anchor_cn}`)", path.display()),
        ),
        (Vouched::Primary, Roots::BuiltIn) if anchor_cn.starts_with("Amazon RDS") => (
            "builtin-rds",
            format!("trusted by the built-in RDS CA `{anchor_cn}`"),
        ),
        (Vouched::Primary, Roots::BuiltIn) => (
            "builtin-amazon",
            format!("trusted by the built-in Amazon root `{anchor_cn}`"),
        ),
    };
    step = step.detail("trusted_by", trusted_by);
    let Some(leaf) = leaf else {
        return step.ok(format!("{proto} in {ms} ms, {said}"));
    };
    let left = leaf
        .not_after
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    let days = left.as_secs() / 86400;
    step = step.detail("certificate_days_left", days);
    let summary = format!(
        "{proto} in {ms} ms, {said}; certificate for `{}` expires {} (in {})",
        leaf.subject_cn,
        rfc3339(leaf.not_after),
        human_duration(left.as_secs())
    );
    if days < CERT_WARN_DAYS {
        return step.warn(summary, renew_hint(endpoint.kind, &endpoint.name));
    }
    step.ok(summary)
}

fn renew_hint(kind: EndpointKind, name: &str) -> String {
    match kind {
        EndpointKind::Proxy => "RDS renews proxy certificates itself: if this one is not renewed within days, open an AWS support case".to_owned(),
        EndpointKind::Instance => format!(
            "rotate the instance's CA before it expires: aws rds modify-db-instance --db-instance-identifier {name} --ca-certificate-identifier rds-ca-rsa2048-g1 --apply-immediately"
        ),
        EndpointKind::ClusterWriter | EndpointKind::ClusterReader => format!(
            "rotate the CA of each instance in cluster {name}: aws rds modify-db-instance --db-instance-identifier INSTANCE --ca-certificate-identifier rds-ca-rsa2048-g1 --apply-immediately"
        ),
        EndpointKind::Host => "renew the server certificate before it expires (for RDS: aws rds modify-db-instance --db-instance-identifier ID --ca-certificate-identifier rds-ca-rsa2048-g1 --apply-immediately)".to_owned(),
    }
}

fn untrusted(
    step: Step,
    err: &rustls::Error,
    roots: &Roots,
    sslmode: SslMode,
    host: &str,
    leaf: Option<&CertInfo>,
    anchor: Option<&str>,
) -> Step {
    let issuer = anchor.unwrap_or("an unknown issuer");
    let trust = match roots {
        Roots::BuiltIn => "the built-in RDS bundle or the system store".to_owned(),
        Roots::File(path) => format!("--ca-bundle {}", path.display()),
    };
    let cert = match err {
        rustls::Error::InvalidCertificate(cert) => Some(cert),
        _ => None,
    };
    match cert {
        Some(CertificateError::UnknownIssuer | CertificateError::BadSignature) => step
            .fail(
                Kind::Network,
                format!("the server's certificate chains to `{issuer}`, which {trust} does not hold ({err})"),
            )
            .then(match roots {
                Roots::BuiltIn => "pass --ca-bundle FILE with the CA that issued it (for RDS, https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem); if you did not expect another CA, something intercepts TLS".to_owned(),
                Roots::File(_) => "the file lacks that CA: add it, or drop --ca-bundle/PGSSLROOTCERT to use the built-in RDS bundle".to_owned(),
            }),
        Some(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }) => step
            .fail(
                Kind::Network,
                format!(
                    "the server's certificate (for `{}`) does not name `{host}` (sslmode {})",
                    leaf.map_or("?", |l| l.subject_cn.as_str()),
                    sslmode.as_str()
                ),
            )
            .then("connect by the endpoint's real name; for a tunnel keep --proxy/--cluster/--instance/--host NAME and add --via 127.0.0.1:PORT (or use --sslmode verify-ca)"),
        Some(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => step
            .fail(
                Kind::Network,
                format!(
                    "the server's certificate expired {}",
                    leaf.map(|l| rfc3339(l.not_after)).unwrap_or_default()
                ),
            )
            .then("rotate the database's CA: aws rds modify-db-instance --db-instance-identifier ID --ca-certificate-identifier rds-ca-rsa2048-g1 --apply-immediately"),
        _ => step
            .fail(Kind::Network, format!("the server's certificate was refused: {err}"))
            .then("check the CA bundle (--ca-bundle) and the server's certificate"),
    }
}

/// What a certificate says about itself.
struct CertInfo {
    subject_cn: String,
    issuer_cn: String,
    not_after: SystemTime,
}

impl CertInfo {
    fn parse(der: &CertificateDer<'_>) -> Option<CertInfo> {
        use x509_cert::der::Decode;
        let cert = x509_cert::Certificate::from_der(der.as_ref()).ok()?;
        let tbs = &cert.tbs_certificate;
        Some(CertInfo {
            subject_cn: common_name(&tbs.subject.to_string()),
            issuer_cn: common_name(&tbs.issuer.to_string()),
            not_after: tbs.validity.not_after.to_system_time(),
        })
    }
}

/// The CN of an RFC 4514 name, or the whole name when it has none.
fn common_name(name: &str) -> String {
    name.split(',')
        .find_map(|part| part.trim().strip_prefix("CN="))
        .map_or_else(|| name.to_owned(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses() {
        for private in [
            "10.0.3.17",
            "172.31.2.2",
            "192.168.1.1",
            "100.64.0.1",
            "fd00::1",
            "169.254.1.1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in [
            "52.1.2.3",
            "127.0.0.1",
            "8.8.8.8",
            "2600:1f18::1",
            "172.32.0.1",
        ] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn ssm_command_forwards_the_endpoint() {
        let cmd = ssm_command("db.cluster-abc.us-east-1.rds.amazonaws.com", 5432);
        assert!(
            cmd.contains("AWS-StartPortForwardingSessionToRemoteHost"),
            "{cmd}"
        );
        assert!(
            cmd.contains("\"host\":[\"db.cluster-abc.us-east-1.rds.amazonaws.com\"]"),
            "{cmd}"
        );
        assert!(cmd.contains("\"localPortNumber\":[\"15432\"]"), "{cmd}");
    }

    #[test]
    fn common_names() {
        assert_eq!(
            common_name("CN=Amazon RDS us-east-1 Root CA RSA2048 G1,O=Amazon"),
            "Amazon RDS us-east-1 Root CA RSA2048 G1"
        );
        assert_eq!(common_name("O=Org"), "O=Org");
    }
}

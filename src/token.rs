//! The IAM authentication token: a SigV4 presigned `connect` URL without its scheme.
//!
//! botocore's `generate_db_auth_token` is the reference, byte for byte
//! (tests/fixtures/token_vectors). We sign with `aws-sigv4` rather than the
//! generator in `aws-sdk-rds`, which leaves the user name unencoded (a
//! different signature for `@ + & = / %`, a panic on a space) and falls back
//! to us-east-1 when no region is known (DESIGN.md, "Facts").
//!
//! Clock and credentials are passed in, so the same code serves the golden
//! tests and the CLI.

use std::fmt;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// How long RDS accepts a token after it was signed.
pub const LIFETIME: Duration = Duration::from_secs(900);

/// Everything except RFC 3986 unreserved characters gets percent-encoded,
/// as botocore's `percent_encode` does (safe = "-_.~").
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A value that must never reach a log, an error message or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted<T>(T);

impl<T> Redacted<T> {
    pub fn new(value: T) -> Self {
        Redacted(value)
    }

    /// The secret itself; call only where it is meant to go (stdout of
    /// `rdsiam token`, `PGPASSWORD`, the password message).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

/// What a token is signed for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub region: &'a str,
}

/// A minted token and when it stops being accepted.
#[derive(Clone, Debug)]
pub struct Token {
    pub value: Redacted<String>,
    pub expires_at: SystemTime,
}

/// Sign a token for `request` with `credentials` at instant `now`.
pub fn generate(
    request: &TokenRequest<'_>,
    credentials: &Credentials,
    now: SystemTime,
) -> Result<Token> {
    let user = utf8_percent_encode(request.user, QUERY_VALUE).to_string();
    // botocore keeps the host as typed in the token, but signs the `host`
    // header from urlsplit(), which lower-cases it and drops a default port.
    let signed_host = request.host.to_ascii_lowercase();
    let host_header = if request.port == 443 {
        signed_host.clone()
    } else {
        format!("{signed_host}:{}", request.port)
    };
    let url = format!(
        "https://{signed_host}:{}/?Action=connect&DBUser={user}",
        request.port
    );

    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(LIFETIME);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(request.region)
        .name("rds-db")
        .time(now)
        .settings(settings)
        .build()
        .context("building the token's signing parameters")?
        .into();
    let signable = SignableRequest::new(
        "GET",
        url,
        std::iter::once(("host", host_header.as_str())),
        // botocore moves the body into the query and hashes the now-empty body.
        SignableBody::Bytes(&[]),
    )
    .context("host name is not valid in a URL")?;
    let (instructions, _) = sign(signable, &params)
        .context("signing the token")?
        .into_parts();

    let param = |name: &str| {
        instructions
            .params()
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| utf8_percent_encode(value, QUERY_VALUE).to_string())
    };
    // botocore's order: operation params, then auth params in insertion
    // order, the security token last before the signature.
    let mut token = format!(
        "{}:{}/?Action=connect&DBUser={user}",
        request.host, request.port
    );
    for name in [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    ] {
        if let Some(value) = param(name) {
            token.push('&');
            token.push_str(name);
            token.push('=');
            token.push_str(&value);
        }
    }
    // A token outlives neither its 15 minutes nor the credentials behind it.
    let expires_at = match credentials.expiry() {
        Some(at) => at.min(now + LIFETIME),
        None => now + LIFETIME,
    };
    Ok(Token {
        value: Redacted::new(token),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::DateTime;
    use aws_smithy_types::date_time::Format;

    fn creds(session: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session.map(str::to_owned),
            None,
            "test",
        )
    }

    fn at(rfc3339: &str) -> SystemTime {
        DateTime::from_str(rfc3339, Format::DateTime)
            .unwrap()
            .try_into()
            .unwrap()
    }

    #[derive(serde::Deserialize)]
    struct Vector {
        name: String,
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
        region: String,
        host: String,
        port: u16,
        user: String,
        timestamp: String,
        token: String,
    }

    #[derive(serde::Deserialize)]
    struct Vectors {
        vectors: Vec<Vector>,
    }

    #[test]
    fn matches_every_botocore_vector() {
        let file: Vectors =
            serde_json::from_str(include_str!("../tests/fixtures/token_vectors/vectors.json"))
                .unwrap();
        assert!(file.vectors.len() >= 30, "vectors file looks truncated");
        let mut mismatches = Vec::new();
        for v in &file.vectors {
            let credentials = Credentials::new(
                &v.access_key_id,
                &v.secret_access_key,
                v.session_token.clone(),
                None,
                "vector",
            );
            let request = TokenRequest {
                host: &v.host,
                port: v.port,
                user: &v.user,
                region: &v.region,
            };
            let token = generate(&request, &credentials, at(&v.timestamp)).unwrap();
            if token.value.expose() != &v.token {
                mismatches.push(format!(
                    "{}:\n  ours:     {}\n  botocore: {}",
                    v.name,
                    token.value.expose(),
                    v.token
                ));
            }
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    }

    #[test]
    fn token_expires_fifteen_minutes_after_signing() {
        let now = at("2026-11-26T16:36:47Z");
        let request = TokenRequest {
            host: "h",
            port: 5432,
            user: "u",
            region: "us-east-1",
        };
        let token = generate(&request, &creds(None), now).unwrap();
        assert_eq!(token.expires_at, at("2026-11-26T16:51:47Z"));
        assert!(token.value.expose().contains("X-Amz-Date=20261126T163647Z"));
    }

    #[test]
    fn expiring_credentials_shorten_the_token() {
        let now = at("2026-11-26T16:36:47Z");
        let soon = at("2026-11-26T16:40:00Z");
        let creds = Credentials::new("AKID", "secret", Some("t".into()), Some(soon), "test");
        let request = TokenRequest {
            host: "h",
            port: 5432,
            user: "u",
            region: "us-east-1",
        };
        assert_eq!(generate(&request, &creds, now).unwrap().expires_at, soon);
    }

    #[test]
    fn user_name_is_encoded_and_session_token_comes_last_but_one() {
        let request = TokenRequest {
            host: "db.example",
            port: 5432,
            user: "jane doe+ops@x/y",
            region: "eu-west-1",
        };
        let token = generate(
            &request,
            &creds(Some("tok/en+=")),
            at("2026-11-26T00:00:00Z"),
        )
        .unwrap();
        let value = token.value.expose();
        assert!(value.starts_with(
            "db.example:5432/?Action=connect&DBUser=jane%20doe%2Bops%40x%2Fy&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261126%2Feu-west-1%2Frds-db%2Faws4_request&"
        ));
        assert!(value.contains(
            "&X-Amz-SignedHeaders=host&X-Amz-Security-Token=tok%2Fen%2B%3D&X-Amz-Signature="
        ));
    }

    #[test]
    fn redacted_never_shows_in_debug() {
        let token = generate(
            &TokenRequest {
                host: "h",
                port: 1,
                user: "u",
                region: "us-east-1",
            },
            &creds(None),
            SystemTime::now(),
        )
        .unwrap();
        let debug = format!("{token:?}");
        assert!(debug.contains("**REDACTED**"));
        assert!(!debug.contains("X-Amz-Signature"));
    }
}

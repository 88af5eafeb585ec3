//! Tokens: a hand-written SigV4 presign for `rds-db:connect`, and its verifier, with the
//! calendar maths for `X-Amz-Date`. Independent of any AWS library on purpose (see the
//! module header of [`super`]), and free of I/O, so it can be reviewed and tested alone.

use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

/// How long a token may live at most, and the only value AWS SDKs sign with.
const MAX_EXPIRES: i64 = 900;
/// How far in the future X-Amz-Date may be (clock skew tolerance).
const MAX_FUTURE_SKEW: i64 = 300;

/// RFC 3986 unreserved characters stay; everything else is `%XX` (uppercase), as SigV4 wants.
const SIGV4_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Signs an RDS IAM auth token the way AWS SDKs do (query parameters in the SDKs' order,
/// `X-Amz-Expires=900`), without the `https://` scheme: `host:port/?Action=connect&…`.
#[allow(clippy::too_many_arguments)] // mirrors the inputs of the SDKs' generate_db_auth_token
pub fn sign_token(
    host: &str,
    port: u16,
    user: &str,
    region: &str,
    akid: &str,
    secret: &str,
    session_token: Option<&str>,
    unix_time: i64,
) -> String {
    let amz_date = format_amz_date(unix_time);
    let date = &amz_date[..8];
    let credential = format!("{akid}/{date}/{region}/rds-db/aws4_request");
    let mut params: Vec<(&str, String)> = vec![
        ("Action", "connect".to_string()),
        ("DBUser", encode(user)),
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_string()),
        ("X-Amz-Credential", encode(&credential)),
        ("X-Amz-Date", amz_date.clone()),
        ("X-Amz-Expires", MAX_EXPIRES.to_string()),
        ("X-Amz-SignedHeaders", "host".to_string()),
    ];
    if let Some(t) = session_token {
        params.push(("X-Amz-Security-Token", encode(t)));
    }
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let signature = signature(host, port, &pairs, secret, &amz_date, region);
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{host}:{port}/?{}&X-Amz-Signature={signature}",
        query.join("&")
    )
}

/// Verifies `token` as RDS would for a login as `user` to `host:port` in `region`, at unix
/// time `now`. `Err` carries the reason (as used in [`Gate::events`]): `bad-format`,
/// `bad-encoding`, `wrong-host`, `wrong-port`, `wrong-action`, `wrong-user`, `bad-algorithm`,
/// `bad-signed-headers`, `bad-credential`, `unknown-key`, `wrong-service`, `wrong-region`,
/// `bad-date`, `wrong-date`, `missing-session-token`, `wrong-session-token`,
/// `unexpected-session-token`, `bad-expires`, `expired`, `not-yet-valid`, `bad-signature`.
pub fn verify_token(
    token: &str,
    user: &str,
    host: &str,
    port: u16,
    region: &str,
    credentials: &[(String, String, Option<String>)],
    now: i64,
) -> std::result::Result<(), &'static str> {
    verify_token_bytes(token, user.as_bytes(), host, port, region, credentials, now)
}

pub(super) fn verify_token_bytes(
    token: &str,
    user: &[u8],
    host: &str,
    port: u16,
    region: &str,
    credentials: &[(String, String, Option<String>)],
    now: i64,
) -> std::result::Result<(), &'static str> {
    let (prefix, query) = token.split_once("/?").ok_or("bad-format")?;
    let (tok_host, tok_port) = prefix.rsplit_once(':').ok_or("bad-format")?;
    let tok_port: u16 = tok_port.parse().map_err(|_| "bad-format")?;
    if tok_host.is_empty() || tok_host.contains('/') {
        return Err("bad-format");
    }

    let mut params: Vec<(&str, &str)> = Vec::new();
    for part in query.split('&') {
        let (k, v) = part.split_once('=').ok_or("bad-format")?;
        if params.iter().any(|(seen, _)| *seen == k) {
            return Err("bad-format");
        }
        params.push((k, v));
    }
    // SigV4 signs the canonical encoding; an SDK that encodes differently (lowercase hex, a
    // raw '+', an escaped '~') produces a signature for a string RDS never builds.
    for (k, v) in &params {
        for s in [k, v] {
            let decoded = percent_decode_str(s).collect::<Vec<u8>>();
            let canon = percent_encoding::percent_encode(&decoded, SIGV4_ENCODE).to_string();
            if canon != *s {
                return Err("bad-encoding");
            }
        }
    }
    let get = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let decode = |v: &str| percent_decode_str(v).collect::<Vec<u8>>();
    let required = |name: &str| get(name).ok_or("bad-format");

    if !tok_host.eq_ignore_ascii_case(host) {
        return Err("wrong-host");
    }
    if tok_port != port {
        return Err("wrong-port");
    }
    if required("Action")? != "connect" {
        return Err("wrong-action");
    }
    let db_user = decode(required("DBUser")?);
    if std::str::from_utf8(&db_user).is_err() {
        return Err("bad-encoding");
    }
    if db_user != user {
        return Err("wrong-user");
    }
    if required("X-Amz-Algorithm")? != "AWS4-HMAC-SHA256" {
        return Err("bad-algorithm");
    }
    if required("X-Amz-SignedHeaders")? != "host" {
        return Err("bad-signed-headers");
    }
    let credential =
        String::from_utf8(decode(required("X-Amz-Credential")?)).map_err(|_| "bad-credential")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, scope_date, scope_region, service, terminator] = scope[..] else {
        return Err("bad-credential");
    };
    if terminator != "aws4_request" {
        return Err("bad-credential");
    }
    let (_, secret, session) = credentials
        .iter()
        .find(|(id, _, _)| id == akid)
        .ok_or("unknown-key")?;
    if service != "rds-db" {
        return Err("wrong-service");
    }
    if scope_region != region {
        return Err("wrong-region");
    }
    let amz_date = required("X-Amz-Date")?;
    let signed_at = parse_amz_date(amz_date).ok_or("bad-date")?;
    if scope_date != &amz_date[..8] {
        return Err("wrong-date");
    }
    match (session, get("X-Amz-Security-Token")) {
        (Some(_), None) => return Err("missing-session-token"),
        (Some(want), Some(got)) if decode(got) != want.as_bytes() => {
            return Err("wrong-session-token");
        }
        (None, Some(_)) => return Err("unexpected-session-token"),
        _ => {}
    }
    let expires: i64 = required("X-Amz-Expires")?
        .parse()
        .map_err(|_| "bad-expires")?;
    if !(1..=MAX_EXPIRES).contains(&expires) {
        return Err("bad-expires");
    }
    if now > signed_at + expires {
        return Err("expired");
    }
    if signed_at > now + MAX_FUTURE_SKEW {
        return Err("not-yet-valid");
    }
    let given = required("X-Amz-Signature")?;
    let unsigned: Vec<(&str, &str)> = params
        .iter()
        .copied()
        .filter(|(k, _)| *k != "X-Amz-Signature")
        .collect();
    let want = signature(tok_host, tok_port, &unsigned, secret, amz_date, region);
    if !constant_time_eq(given.as_bytes(), want.as_bytes()) {
        return Err("bad-signature");
    }
    Ok(())
}

/// The SigV4 signature (lowercase hex) over already-encoded query parameters.
fn signature(
    host: &str,
    port: u16,
    params: &[(&str, &str)],
    secret: &str,
    amz_date: &str,
    region: &str,
) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let canonical_query: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let host_header = if port == 443 {
        host.to_ascii_lowercase()
    } else {
        format!("{}:{port}", host.to_ascii_lowercase())
    };
    // The payload hash is that of the empty body: botocore and aws-sdk-rds both sign
    // `SignableBody::empty()`, not `UNSIGNED-PAYLOAD`.
    let canonical_request = format!(
        "GET\n/\n{}\nhost:{host_header}\n\nhost\n{}",
        canonical_query.join("&"),
        hex::encode(Sha256::digest(b""))
    );
    let date = amz_date.get(..8).unwrap_or_default();
    let scope = format!("{date}/{region}/rds-db/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, "rds-db", "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    hex::encode(hmac_sha256(&key, string_to_sign.as_bytes()))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, SIGV4_ENCODE).to_string()
}

/// `yyyymmddThhmmssZ` for a unix time (UTC).
fn format_amz_date(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// When a token says it was signed (its X-Amz-Date), as unix time.
pub(super) fn token_signed_at(token: &str) -> Option<i64> {
    let query = token.split_once("/?")?.1;
    let date = query
        .split('&')
        .find_map(|p| p.strip_prefix("X-Amz-Date="))?;
    parse_amz_date(date)
}

/// Parses `yyyymmddThhmmssZ` strictly into a unix time.
fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    // Reject dates like Feb 31 that would silently roll over.
    if civil_from_days(days) != (y, mo, d) {
        return None;
    }
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::{
        PROXY_ENDPOINT_HOST, TEST_ACCESS_KEY_ID, TEST_REGION, TEST_SECRET_ACCESS_KEY,
    };

    #[test]
    fn sign_token_matches_botocore() {
        // Generated with botocore 1.43.11's generate_db_auth_token, clock frozen at
        // 2024-02-29T23:59:58Z (unix 1709251198), keys TEST_ACCESS_KEY_ID/TEST_SECRET_ACCESS_KEY.
        let t = 1_709_251_198;
        let cases: [(&str, u16, &str, Option<&str>, &str); 4] = [
            (
                PROXY_ENDPOINT_HOST,
                5432,
                "iamuserapp",
                None,
                "postgresqlproxy.proxy-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com:5432/?Action=connect&DBUser=iamuserapp&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240229%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240229T235958Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=c246fe2aa78df7c72cb0ee131b526e645093d9b55776aa57b74cdba4f80f7c40",
            ),
            (
                PROXY_ENDPOINT_HOST,
                5432,
                "jane@example.com",
                Some("FQoGZXIvYXdzE+/abc=="),
                "postgresqlproxy.proxy-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com:5432/?Action=connect&DBUser=jane%40example.com&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240229%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240229T235958Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FQoGZXIvYXdzE%2B%2Fabc%3D%3D&X-Amz-Signature=d81948ec9986549e5b0ca611f9c414b8bc7bd7b3964e2ca8c0368c737326964e",
            ),
            (
                "localhost",
                443,
                "ユーザー",
                None,
                "localhost:443/?Action=connect&DBUser=%E3%83%A6%E3%83%BC%E3%82%B6%E3%83%BC&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240229%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240229T235958Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=07faf0e6e4b4178722344cea202401bc583027586a086a6e222e62434e5da2d6",
            ),
            (
                "LocalHost",
                15432,
                "a&b=c with space~ops+oncall",
                None,
                "LocalHost:15432/?Action=connect&DBUser=a%26b%3Dc%20with%20space~ops%2Boncall&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240229%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240229T235958Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=0c076820481983894b203e1c93da94aab1aa204d294d8fafc4b2a16b659308df",
            ),
        ];
        for (host, port, user, session, want) in cases {
            let got = sign_token(
                host,
                port,
                user,
                TEST_REGION,
                TEST_ACCESS_KEY_ID,
                TEST_SECRET_ACCESS_KEY,
                session,
                t,
            );
            assert_eq!(got, want);
            let creds = [(
                TEST_ACCESS_KEY_ID.to_string(),
                TEST_SECRET_ACCESS_KEY.to_string(),
                session.map(str::to_string),
            )];
            assert_eq!(
                verify_token(want, user, host, port, TEST_REGION, &creds, t),
                Ok(())
            );
            assert_eq!(
                verify_token(want, user, host, port, TEST_REGION, &creds, t + 900),
                Ok(())
            );
        }
    }

    #[test]
    fn verify_token_names_each_failure() {
        let t = 1_709_251_198;
        let creds = vec![
            ("AKIDPLAIN".to_string(), "s1".to_string(), None),
            (
                "ASIASESSION".to_string(),
                "s2".to_string(),
                Some("tok/en+=".to_string()),
            ),
        ];
        let sign = |user: &str, akid: &str, secret: &str, session: Option<&str>, at: i64| {
            sign_token(
                "db.example.com",
                5432,
                user,
                "eu-west-1",
                akid,
                secret,
                session,
                at,
            )
        };
        let check = |token: &str, user: &str, now: i64| {
            verify_token(
                token,
                user,
                "DB.example.com",
                5432,
                "eu-west-1",
                &creds,
                now,
            )
        };
        let good = sign("jane@example.com", "AKIDPLAIN", "s1", None, t);
        assert_eq!(check(&good, "jane@example.com", t), Ok(()));
        assert_eq!(check(&good, "jane@example.com", t + 900), Ok(()));
        assert_eq!(check(&good, "jane@example.com", t + 901), Err("expired"));
        assert_eq!(check(&good, "jane@example.com", t - 300), Ok(()));
        assert_eq!(
            check(&good, "jane@example.com", t - 301),
            Err("not-yet-valid")
        );
        assert_eq!(check(&good, "Jane@example.com", t), Err("wrong-user"));
        assert_eq!(
            verify_token(
                &good,
                "jane@example.com",
                "db.example.com",
                5433,
                "eu-west-1",
                &creds,
                t
            ),
            Err("wrong-port")
        );
        assert_eq!(
            verify_token(
                &good,
                "jane@example.com",
                "db.example.com",
                5432,
                "us-east-1",
                &creds,
                t
            ),
            Err("wrong-region")
        );
        let lower = good.replacen("%2F", "%2f", 1);
        assert_eq!(check(&lower, "jane@example.com", t), Err("bad-encoding"));
        let plus = sign("ops+oncall", "AKIDPLAIN", "s1", None, t).replace("%2B", "+");
        assert_eq!(check(&plus, "ops+oncall", t), Err("bad-encoding"));
        let tilde = sign("a~b", "AKIDPLAIN", "s1", None, t).replace("a~b", "a%7Eb");
        assert_eq!(check(&tilde, "a~b", t), Err("bad-encoding"));
        assert_eq!(
            check(
                &good.replace("X-Amz-Expires=900", "X-Amz-Expires=901"),
                "jane@example.com",
                t
            ),
            Err("bad-expires")
        );
        assert_eq!(
            check(
                &good.replace("Action=connect", "Action=Connect"),
                "jane@example.com",
                t
            ),
            Err("wrong-action")
        );
        assert_eq!(
            check(&good.replace("rds-db", "rds"), "jane@example.com", t),
            Err("wrong-service")
        );
        assert_eq!(
            check(&sign("x", "AKIDOTHER", "s1", None, t), "x", t),
            Err("unknown-key")
        );
        assert_eq!(
            check(&sign("x", "AKIDPLAIN", "wrong", None, t), "x", t),
            Err("bad-signature")
        );
        assert_eq!(
            check(&sign("x", "ASIASESSION", "s2", Some("tok/en+="), t), "x", t),
            Ok(())
        );
        assert_eq!(
            check(&sign("x", "ASIASESSION", "s2", None, t), "x", t),
            Err("missing-session-token")
        );
        assert_eq!(
            check(&sign("x", "ASIASESSION", "s2", Some("other"), t), "x", t),
            Err("wrong-session-token")
        );
        assert_eq!(
            check(&sign("x", "AKIDPLAIN", "s1", Some("tok"), t), "x", t),
            Err("unexpected-session-token")
        );
        let dup = format!("{good}&Action=connect");
        assert_eq!(check(&dup, "jane@example.com", t), Err("bad-format"));
        assert_eq!(check("", "x", t), Err("bad-format"));
        assert_eq!(check("db.example.com:5432/?", "x", t), Err("bad-format"));
        let wrong_date = good.replace("%2F20240229%2F", "%2F20240228%2F");
        assert_eq!(check(&wrong_date, "jane@example.com", t), Err("wrong-date"));
    }

    #[test]
    fn amz_dates_round_trip() {
        for t in [0, 951_782_400, 1_709_251_198, 4_102_444_799] {
            assert_eq!(parse_amz_date(&format_amz_date(t)), Some(t));
        }
        assert_eq!(format_amz_date(1_709_251_198), "20240229T235958Z");
        assert_eq!(parse_amz_date("20230229T000000Z"), None);
        assert_eq!(parse_amz_date("20240229T235958"), None);
        assert_eq!(parse_amz_date("2024022+T235958Z"), None);
    }
}

//! SigV4 as the server sees it: the credential scope read from `Authorization` (always, so
//! requests can be recorded with key id, region and service), the full signature check AWS makes
//! (only when signatures are required), and the `X-Amz-Date` calendar maths behind it.

use sha2::{Digest as _, Sha256};

use super::http::{HttpRequest, http_date, parse_form};
use super::{ApiError, Params, api_error};

pub(super) struct Credential {
    pub(super) access_key_id: String,
    pub(super) region: String,
    pub(super) service: String,
}

/// `AWS4-HMAC-SHA256 Credential=AKID/20240501/us-east-1/rds/aws4_request, SignedHeaders=…, Signature=…`
pub(super) fn parse_authorization(value: &str) -> Option<Credential> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256")?;
    let credential = rest
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("Credential="))?;
    let mut scope = credential.split('/');
    let (Some(key), Some(_date), Some(region), Some(service), Some("aws4_request"), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return None;
    };
    if key.is_empty() || region.is_empty() || service.is_empty() {
        return None;
    }
    Some(Credential {
        access_key_id: key.to_string(),
        region: region.to_string(),
        service: service.to_string(),
    })
}

/// SigV4 header signing, checked as AWS does (only when
/// [`RdsApi::require_signatures`](super::RdsApi::require_signatures) is on).
pub(super) fn check_signature(
    http: &HttpRequest,
    secrets: &[(String, String)],
    now: i64,
) -> Result<(), ApiError> {
    use hmac::{Hmac, KeyInit, Mac};
    let mismatch = || {
        api_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        )
    };
    let authorization = http.header("authorization").unwrap_or_default();
    let field = |name: &str| {
        authorization
            .strip_prefix("AWS4-HMAC-SHA256")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .find_map(|part| part.strip_prefix(name))
            .unwrap_or_default()
            .to_string()
    };
    let (credential, signed_headers, signature) = (
        field("Credential="),
        field("SignedHeaders="),
        field("Signature="),
    );
    let (key_id, scope) = credential.split_once('/').ok_or_else(mismatch)?;
    let Some((_, secret)) = secrets.iter().find(|(k, _)| k == key_id) else {
        return Err(api_error(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ));
    };
    let amz_date = http.header("x-amz-date").ok_or_else(mismatch)?;
    // AWS's own words for a request signed more than 5 minutes off its clock.
    let signed_at = amz_date_secs(amz_date).ok_or_else(mismatch)?;
    if (signed_at - now).abs() > 300 {
        let (verb, relation) = if signed_at < now {
            ("Signature expired", "is now earlier than")
        } else {
            ("Signature not yet current", "is still later than")
        };
        let bound = if signed_at < now {
            now - 300
        } else {
            now + 300
        };
        return Err(api_error(
            403,
            "SignatureDoesNotMatch",
            format!(
                "{verb}: {amz_date} {relation} {} ({} {} 5 min.)",
                amz_date_of(bound),
                amz_date_of(now),
                if signed_at < now { "-" } else { "+" }
            ),
        ));
    }
    let (path, query) = http.target.split_once('?').unwrap_or((&http.target, ""));
    let mut query_pairs: Vec<(String, String)> = Vec::new();
    let mut decoded = Params::new();
    parse_form(query, &mut decoded);
    for (k, v) in decoded {
        query_pairs.push((sigv4_encode(&k), sigv4_encode(&v)));
    }
    query_pairs.sort();
    let canonical_query = query_pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let values: Vec<String> = http
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let payload_hash = match http.header("x-amz-content-sha256") {
        Some(hash) => hash.to_string(),
        None => hex::encode(Sha256::digest(&http.body)),
    };
    let canonical = format!(
        "{}\n{}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        http.method,
        if path.is_empty() { "/" } else { path },
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let hmac = |key: &[u8], data: &[u8]| -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    };
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in scope.split('/') {
        key = hmac(&key, part.as_bytes());
    }
    let expected = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    if expected == signature {
        Ok(())
    } else {
        Err(mismatch())
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `20240501T120000Z` as unix seconds.
fn amz_date_secs(value: &str) -> Option<i64> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| value.get(r)?.parse::<i64>().ok();
    let days = days_from_civil(num(0..4)?, num(4..6)?, num(6..8)?);
    Some(days * 86_400 + num(9..11)? * 3600 + num(11..13)? * 60 + num(13..15)?)
}

/// Unix seconds as `20240501T120000Z`.
fn amz_date_of(unix: i64) -> String {
    // Reuse the HTTP date's civil conversion: "Sun, 06 Nov 1994 08:49:37 GMT".
    let http = http_date(unix);
    let parts: Vec<&str> = http.split([' ', ':']).collect();
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == parts[2]).unwrap_or(0) + 1;
    format!(
        "{}{month:02}{}T{}{}{}Z",
        parts[3], parts[1], parts[4], parts[5], parts[6]
    )
}

/// RFC 3986 unreserved characters stay, everything else `%XX`.
fn sigv4_encode(value: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(value, SET).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(amz_date_secs("19941106T084937Z"), Some(784_111_777));
        assert_eq!(amz_date_of(784_111_777), "19941106T084937Z");
        assert_eq!(amz_date_secs("1994-11-06"), None);
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
    }
}

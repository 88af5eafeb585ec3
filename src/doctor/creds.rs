//! Steps 1 and 2: where the credentials came from and how long they last;
//! who STS says we are, and how far this machine's clock is from AWS's
//! (read from the STS answer's `Date` header).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::credential_feature::AwsCredentialFeature;
use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use super::{Findings, Step, human_duration, mask_key, rfc3339};
use crate::aws::{self, Aws, AwsSettings};
use crate::error::Kind;
use crate::target::Target;

/// A token lives this long; credentials that die sooner take it with them.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// AWS refuses signatures more than this far from its clock.
pub const SKEW_FAIL: i64 = crate::explain::SKEW_LIMIT_SECS;
/// Past this, warn: the margin is being eaten.
pub const SKEW_WARN: i64 = 60;
const STS_TIMEOUT: Duration = Duration::from_secs(5);

/// Step 1. Loads region and credentials the way every command does.
pub async fn credentials(target: &Target, found: &mut Findings) -> (Step, Option<Aws>) {
    let step = Step::new(1, "credentials");
    let aws = match aws::load(&target.aws).await {
        Ok(aws) => aws,
        Err(err) => return (step.fail_with(&err), None),
    };
    let creds = aws.credentials();
    let source = source(&creds, &target.aws);
    let key = mask_key(creds.access_key_id());
    let mut step = step
        .detail("source", &source)
        .detail("access_key_id", &key)
        .detail("session_token", creds.session_token().is_some())
        .detail("region", &aws.region)
        .detail("expires_at", creds.expiry().map(rfc3339))
        .detail(
            "expires_in_s",
            creds
                .expiry()
                .map(|at| seconds_from_now(at, SystemTime::now())),
        );
    let what = format!("{source}, key {key}, region {}", aws.region);
    step = match creds.expiry() {
        None => step.ok(format!("{what}, no expiry")),
        Some(at) => {
            let left = seconds_from_now(at, SystemTime::now());
            let refresh = refresh_hint(&source, &target.aws);
            if left <= 0 {
                step.fail(
                    Kind::Aws,
                    format!(
                        "{what}, expired {} ago ({})",
                        human_duration(left.unsigned_abs()),
                        rfc3339(at)
                    ),
                )
                .then(refresh)
            } else if (left as u64) < TOKEN_LIFETIME.as_secs() {
                step.warn(
                    format!(
                        "{what}, expire in {} ({}): a token minted now (15 min) would die with them",
                        human_duration(left as u64),
                        rfc3339(at)
                    ),
                    refresh,
                )
            } else {
                step.ok(format!("{what}, expire in {}", human_duration(left as u64)))
            }
        }
    };
    found.credentials_fresh = step.status == super::Status::Ok;
    (step, Some(aws))
}

fn seconds_from_now(at: SystemTime, now: SystemTime) -> i64 {
    match at.duration_since(now) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Where the SDK found the credentials, from the features it recorded on them.
pub fn source(creds: &Credentials, settings: &AwsSettings) -> String {
    let profile = aws::profile_name(settings);
    let features = creds
        .get_property::<Vec<AwsCredentialFeature>>()
        .cloned()
        .unwrap_or_default();
    let has = |f: &AwsCredentialFeature| features.contains(f);
    use AwsCredentialFeature as F;
    if has(&F::CredentialsEnvVarsStsWebIdToken)
        || has(&F::CredentialsProfileStsWebIdToken)
        || has(&F::CredentialsStsAssumeRoleWebId)
    {
        format!("web identity (profile {profile} or AWS_WEB_IDENTITY_TOKEN_FILE)")
    } else if has(&F::CredentialsStsAssumeRole) {
        format!("assume-role (profile {profile})")
    } else if has(&F::CredentialsSso) || has(&F::CredentialsProfileSso) {
        format!("SSO (profile {profile})")
    } else if has(&F::CredentialsProcess) || has(&F::CredentialsProfileProcess) {
        format!("credential_process (profile {profile})")
    } else if has(&F::CredentialsLogin) || has(&F::CredentialsProfileLogin) {
        format!("aws login (profile {profile})")
    } else if has(&F::CredentialsEnvVars) {
        "environment (AWS_ACCESS_KEY_ID)".to_owned()
    } else if has(&F::CredentialsHttp) {
        "container credentials (ECS/EKS endpoint)".to_owned()
    } else if has(&F::CredentialsImds) {
        "instance role (IMDS)".to_owned()
    } else if has(&F::CredentialsProfile) {
        format!("profile {profile} (keys in ~/.aws)")
    } else {
        "the AWS SDK's default chain".to_owned()
    }
}

fn refresh_hint(source: &str, settings: &AwsSettings) -> String {
    let profile = aws::profile_name(settings);
    if source.starts_with("SSO") {
        format!("run `aws sso login --profile {profile}`, then run this again")
    } else if source.starts_with("credential_process") {
        format!(
            "make the credential_process of [profile {profile}] return credentials that last longer than 15 minutes"
        )
    } else if source.starts_with("environment") {
        "export fresh AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (or unset them and use a profile)".to_owned()
    } else {
        format!(
            "refresh the credentials of profile {profile} (a longer role session: `duration_seconds` in ~/.aws/config)"
        )
    }
}

/// Records the `Date` header of the STS answer and when it arrived.
#[derive(Clone, Debug, Default)]
struct DateHeader(Arc<Mutex<Option<(String, SystemTime)>>>);

impl Intercept for DateHeader {
    fn name(&self) -> &'static str {
        "rdsiam-doctor-date-header"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(date) = context.response().headers().get("date") {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((date.to_owned(), SystemTime::now()));
        }
        Ok(())
    }
}

/// AWS time minus local time, from an HTTP `Date` seen at `local`.
pub fn skew_from_date(date: &str, local: SystemTime) -> Option<i64> {
    let server =
        aws_smithy_types::DateTime::from_str(date, aws_smithy_types::date_time::Format::HttpDate)
            .ok()?;
    let local = aws_smithy_types::DateTime::from(local);
    // The header has whole seconds; compare with the local time truncated alike.
    Some(server.secs() - local.secs())
}

/// `7 min ahead of`, `2 s behind`: which way this clock is off, from
/// the skew (AWS minus local).
fn offset(skew: i64) -> String {
    let way = if skew < 0 { "ahead of" } else { "behind" };
    format!("{} {way}", human_duration(skew.unsigned_abs()))
}

/// Step 2. GetCallerIdentity, and the clock skew from its `Date` header.
pub async fn identity(aws: &Aws, found: &mut Findings) -> Step {
    let step = Step::new(2, "identity");
    let sts = match aws.sts() {
        Ok(sts) => sts,
        Err(err) => return step.fail_with(&err),
    };
    let date = DateHeader::default();
    let call = sts
        .get_caller_identity()
        .customize()
        .interceptor(date.clone())
        .send();
    let answer = tokio::time::timeout(STS_TIMEOUT, call).await;
    let seen = date.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let skew = seen.and_then(|(date, at)| skew_from_date(&date, at));
    found.clock_skew = skew;
    let mut step = step.detail("clock_skew_s", skew);
    let out = match answer {
        Err(_) => {
            return step
                .detail("account", None::<String>)
                .detail("arn", None::<String>)
                .warn(
                    format!("STS did not answer within {}s: identity and clock not checked", STS_TIMEOUT.as_secs()),
                    "check the route to STS (a VPC endpoint for sts, or AWS_ENDPOINT_URL_STS); the login steps still run",
                );
        }
        Ok(Err(err)) => {
            let Some(service) = err.as_service_error() else {
                return step.warn(
                    format!("could not reach STS: {}", aws::error_chain(&err)),
                    "check the route to STS (a VPC endpoint for sts, or AWS_ENDPOINT_URL_STS); the login steps still run",
                );
            };
            let code = service.code().unwrap_or("UnknownError").to_owned();
            let message = service.message().unwrap_or("no message").to_owned();
            step = step.detail("error_code", &code);
            // AWS words a skewed clock as a signature error; the Date
            // header or the message tells the two apart.
            let clock = skew.is_some_and(|s| s.abs() > SKEW_FAIL)
                || message.contains("Signature expired")
                || message.contains("not yet current")
                || code == "RequestExpired"
                || code == "RequestTimeTooSkewed";
            if clock {
                let off = skew.map_or_else(|| "more than 5 min off".to_owned(), offset);
                return step
                    .fail(
                        Kind::Aws,
                        format!("STS refused the request's time: this clock is {off} AWS time ({code}: {message})"),
                    )
                    .then("sync the clock: `sudo timedatectl set-ntp true` or `sudo chronyc makestep` (macOS: `sudo sntp -sS time.apple.com`)");
            }
            return match code.as_str() {
                "SignatureDoesNotMatch" => step
                    .fail(Kind::Aws, format!("STS refused the signature: the secret access key does not match access key {} ({code}: {message})", mask_key(aws.credentials().access_key_id())))
                    .then("fix the secret: AWS_SECRET_ACCESS_KEY, or aws_secret_access_key in ~/.aws/credentials (`aws configure`); a token signed with it is refused the same way"),
                "InvalidClientTokenId" | "UnrecognizedClientException" => step
                    .fail(Kind::Aws, format!("STS does not know access key {} ({code}: {message})", mask_key(aws.credentials().access_key_id())))
                    .then("the key was deleted or belongs to another partition: create new keys or log in again (`aws sso login`)"),
                "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => step
                    .fail(Kind::Aws, format!("STS says the credentials expired ({code}: {message})"))
                    .then("refresh them (`aws sso login`, or a new role session) and run this again"),
                _ => step
                    .fail(Kind::Aws, format!("STS GetCallerIdentity failed: {code}: {message}"))
                    .then("check --profile and the STS endpoint (AWS_ENDPOINT_URL_STS)"),
            };
        }
        Ok(Ok(out)) => out,
    };
    let arn = out.arn().unwrap_or_default().to_owned();
    let account = out.account().unwrap_or_default().to_owned();
    found.signature_ok = true;
    found.caller_arn = Some(arn.clone());
    found.account = Some(account.clone());
    step = step
        .detail("arn", &arn)
        .detail("account", &account)
        .detail("user_id", out.user_id());
    let who = format!("{arn} (account {account})");
    match skew {
        None => step.ok(format!("{who}; clock skew not measured (no Date header)")),
        Some(s) if s.abs() > SKEW_FAIL => step
            .fail(
                Kind::Aws,
                format!(
                    "{who}; this clock is {} AWS time: AWS rejects signatures more than 5 min off, tokens included",
                    offset(s)
                ),
            )
            .then("sync the clock: `sudo timedatectl set-ntp true` or `sudo chronyc makestep` (macOS: `sudo sntp -sS time.apple.com`)"),
        Some(s) if s.abs() > SKEW_WARN => step.warn(
            format!("{who}; this clock is {} AWS time (AWS allows 5 min)", offset(s)),
            "sync the clock before it drifts past 5 min: `sudo timedatectl set-ntp true` or `sudo chronyc makestep`",
        ),
        Some(s) => step.ok(format!("{who}; clock within {} of AWS", human_duration(s.unsigned_abs().max(1)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_from_an_http_date() {
        let local = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = "Tue, 14 Nov 2023 22:20:20 GMT"; // 1_700_000_420
        assert_eq!(skew_from_date(date, local), Some(420));
        assert_eq!(skew_from_date("yesterday", local), None);
        assert_eq!(offset(-420), "7 min ahead of");
        assert_eq!(offset(30), "30 s behind");
    }

    #[test]
    fn sources_come_from_the_sdks_features() {
        let mut creds = Credentials::new("AKID", "secret", None, None, "test");
        let settings = AwsSettings {
            profile: Some("ops".into()),
            ..AwsSettings::default()
        };
        assert_eq!(source(&creds, &settings), "the AWS SDK's default chain");
        creds
            .get_property_mut_or_default::<Vec<AwsCredentialFeature>>()
            .push(AwsCredentialFeature::CredentialsProcess);
        creds
            .get_property_mut_or_default::<Vec<AwsCredentialFeature>>()
            .push(AwsCredentialFeature::CredentialsProfile);
        assert_eq!(
            source(&creds, &settings),
            "credential_process (profile ops)"
        );
    }
}

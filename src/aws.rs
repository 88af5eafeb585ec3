//! AWS region, credentials and API clients, by `aws-config`.
//!
//! Two paths: with keys in the environment and a region at hand, `rdsiam
//! token --host` needs no files, runtime or network ([`from_env`]); every
//! other case goes through the SDK's providers ([`load`]), with the instance
//! metadata service asked once and briefly, so a laptop with no credentials
//! fails in well under a second instead of after IMDS retries.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::imds;
use aws_config::imds::region::ImdsRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_types::region::Region;

use crate::error::Failure;

use crate::config::{ENDPOINT_VARS, REGION_VARS, env_var, first_env};
pub use crate::target::AwsSettings;

/// The most we read of one API answer: a Describe page of 100 resources is
/// well under a megabyte; an endless body must not exhaust memory.
pub const MAX_RESPONSE_BYTES: u64 = 8 * 1024 * 1024;

/// Resolved region and credentials, plus the config the SDK clients share.
pub struct Aws {
    pub region: String,
    pub(crate) credentials: Mutex<Credentials>,
    /// Where the credentials came from, to renew them when they run out
    /// (SSO, assume-role and instance roles last hours; a REPL can outlive
    /// them). Renewal itself lives in `session.rs`.
    pub(crate) provider: Option<SharedCredentialsProvider>,
    /// Held while one task renews, so concurrent minters share the renewal.
    pub(crate) renewing: tokio::sync::Mutex<()>,
    pub(crate) settings: AwsSettings,
    endpoint_url: Option<String>,
    sdk: Option<SdkConfig>,
}

impl Aws {
    /// The current credentials.
    pub fn credentials(&self) -> Credentials {
        self.credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// An RDS API client (on the network path, where the SDK is loaded).
    pub fn rds(&self) -> Result<aws_sdk_rds::Client> {
        let mut config = aws_sdk_rds::config::Builder::from(self.sdk()?).interceptor(
            crate::bounded::CapResponse {
                max: MAX_RESPONSE_BYTES,
            },
        );
        if let Some(url) = &self.endpoint_url {
            config = config.endpoint_url(url);
        }
        Ok(aws_sdk_rds::Client::from_conf(config.build()))
    }

    pub fn sts(&self) -> Result<aws_sdk_sts::Client> {
        let config = aws_sdk_sts::config::Builder::from(self.sdk()?).interceptor(
            crate::bounded::CapResponse {
                max: MAX_RESPONSE_BYTES,
            },
        );
        Ok(aws_sdk_sts::Client::from_conf(config.build()))
    }

    /// The RDS API endpoint the client calls, for messages.
    pub fn rds_endpoint(&self) -> String {
        self.endpoint_url
            .clone()
            .or_else(|| first_env(ENDPOINT_VARS).map(|(_, v)| v))
            .unwrap_or_else(|| format!("https://rds.{}.amazonaws.com", self.region))
    }

    fn sdk(&self) -> Result<&SdkConfig> {
        self.sdk
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("internal: the AWS SDK was not loaded on this path"))
    }
}

/// The profile the SDK will use, for messages.
pub fn profile_name(settings: &AwsSettings) -> String {
    settings
        .profile
        .clone()
        .or_else(|| env_var("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_owned())
}

/// The fast path: static keys from the environment and a region from the
/// flag or the environment, with no file read and no runtime. `None` when
/// the SDK's providers are needed (a `--profile`, keys in files, SSO…).
pub fn from_env(settings: &AwsSettings) -> Option<Aws> {
    if settings.profile.is_some() {
        // An explicit --profile beats keys in the environment, as in the AWS CLI.
        return None;
    }
    let region = settings
        .region
        .clone()
        .or_else(|| first_env(REGION_VARS).map(|(_, v)| v))?;
    let key = env_var("AWS_ACCESS_KEY_ID")?;
    let secret = env_var("AWS_SECRET_ACCESS_KEY")?;
    let session = env_var("AWS_SESSION_TOKEN").or_else(|| env_var("AWS_SECURITY_TOKEN"));
    Some(Aws {
        region,
        credentials: Mutex::new(Credentials::new(key, secret, session, None, "Environment")),
        provider: None,
        renewing: tokio::sync::Mutex::new(()),
        settings: settings.clone(),
        endpoint_url: settings.endpoint_url.clone(),
        sdk: None,
    })
}

#[cfg(test)]
impl Aws {
    /// An `Aws` holding `current`, renewed from `provider`.
    pub(crate) fn for_tests(
        current: Credentials,
        provider: Option<SharedCredentialsProvider>,
    ) -> Aws {
        Aws {
            region: "us-east-1".into(),
            credentials: Mutex::new(current),
            provider,
            renewing: tokio::sync::Mutex::new(()),
            settings: AwsSettings::default(),
            endpoint_url: None,
            sdk: None,
        }
    }
}

/// IMDS is asked once with short timeouts: on EC2 it answers in
/// milliseconds, elsewhere every retry is a wasted second.
fn imds_client() -> imds::Client {
    imds::Client::builder()
        .connect_timeout(Duration::from_millis(300))
        .read_timeout(Duration::from_secs(1))
        .max_attempts(1)
        .build()
}

/// Region, credentials and SDK config through the SDK's providers.
pub async fn load(settings: &AwsSettings) -> Result<Aws> {
    let imds = imds_client();
    let region = resolve_region(settings, &imds).await?;
    let region_value = Region::new(region.clone());
    let provider_config = ProviderConfig::default().with_region(Some(region_value.clone()));

    let provider = match bounded_process(settings).await {
        Some(process) => SharedCredentialsProvider::new(process),
        None => sdk_provider(settings, provider_config, region_value.clone(), imds).await,
    };
    let credentials = provide(&provider, settings).await?;

    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region_value)
        .timeout_config(crate::bounded::timeouts(settings.timeout()))
        .credentials_provider(SharedCredentialsProvider::new(credentials.clone()));
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    let sdk = loader.load().await;
    Ok(Aws {
        region,
        credentials: Mutex::new(credentials),
        provider: Some(provider),
        renewing: tokio::sync::Mutex::new(()),
        settings: settings.clone(),
        endpoint_url: settings.endpoint_url.clone(),
        sdk: Some(sdk),
    })
}

/// The profile's `credential_process`, run by us with bounds
/// ([`crate::credproc`]), when that is where the SDK would get credentials:
/// the named profile, or the default chain's when no keys are in the
/// environment.
async fn bounded_process(settings: &AwsSettings) -> Option<crate::credproc::BoundedProcess> {
    if settings.profile.is_none() && env_var("AWS_ACCESS_KEY_ID").is_some() {
        return None;
    }
    let command = crate::credproc::command_for(&profile_name(settings)).await?;
    Some(crate::credproc::BoundedProcess::new(command))
}

/// The SDK's own providers: the named profile, or the default chain.
async fn sdk_provider(
    settings: &AwsSettings,
    provider_config: ProviderConfig,
    region_value: Region,
    imds: imds::Client,
) -> SharedCredentialsProvider {
    match &settings.profile {
        Some(profile) => SharedCredentialsProvider::new(
            ProfileFileCredentialsProvider::builder()
                .configure(&provider_config)
                .profile_name(profile)
                .build(),
        ),
        None => {
            let mut chain =
                aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                    .configure(provider_config)
                    .region(region_value.clone())
                    .imds_client(imds);
            if let Some(profile) = env_var("AWS_PROFILE") {
                chain = chain.profile_name(&profile);
            }
            SharedCredentialsProvider::new(chain.build().await)
        }
    }
}

/// Ask `provider`, within the API timeout: a `credential_process` that never
/// returns or an SSO or assume-role call that hangs must not hang us.
pub(crate) async fn provide(
    provider: &SharedCredentialsProvider,
    settings: &AwsSettings,
) -> Result<Credentials> {
    let limit = settings.timeout();
    match tokio::time::timeout(limit, provider.provide_credentials()).await {
        Ok(result) => result.map_err(|err| credentials_failure(settings, &err).into()),
        Err(_) => {
            let source = match settings.profile.clone().or_else(|| env_var("AWS_PROFILE")) {
                Some(profile) => format!(
                    "profile `{profile}` (its credential_process, SSO or assume-role step)"
                ),
                None => "the default chain (profile `default`: credential_process, SSO or assume-role; container or instance role)".to_owned(),
            };
            Err(Failure::aws(format!(
                "no AWS credentials after {}s from {source}",
                limit.as_secs()
            ))
            .hint("check that source by hand (e.g. `aws sts get-caller-identity --profile NAME`); raise --api-timeout (RDSIAM_API_TIMEOUT) if it is just slow")
            .into())
        }
    }
}

async fn resolve_region(settings: &AwsSettings, imds: &imds::Client) -> Result<String> {
    if let Some(region) = &settings.region {
        return Ok(region.clone());
    }
    let mut profile = ProfileFileRegionProvider::builder();
    if let Some(name) = &settings.profile {
        profile = profile.profile_name(name);
    }
    let chain = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(profile.build())
        .or_else(
            ImdsRegionProvider::builder()
                .imds_client(imds.clone())
                .build(),
        );
    match chain.region().await {
        Some(region) => Ok(region.as_ref().to_owned()),
        None => Err(
            Failure::aws("no AWS region: the RDS API and the token both need one")
                .hint(format!(
                    "pass --region, set AWS_REGION, or add `region = …` to [{}] in ~/.aws/config",
                    profile_section(&profile_name(settings))
                ))
                .into(),
        ),
    }
}

/// Each cause's Display, joined; never `Debug`, which dumps SDK internals.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

fn profile_section(profile: &str) -> String {
    if profile == "default" {
        "default".to_owned()
    } else {
        format!("profile {profile}")
    }
}

/// Turn a credentials error into what failed and what to run next.
fn credentials_failure(settings: &AwsSettings, err: &CredentialsError) -> Failure {
    let profile = profile_name(settings);
    let detail = error_chain(err);
    let lower = detail.to_lowercase();
    if lower.contains("sso")
        && (lower.contains("expired") || lower.contains("unauthorized") || lower.contains("token"))
    {
        return Failure::aws(format!(
            "the AWS SSO session for profile `{profile}` has expired or was never started"
        ))
        .hint(format!("run: aws sso login --profile {profile}"));
    }
    // Off EC2 the metadata service is the last provider asked, so its
    // refusal is what "nothing anywhere" looks like.
    let from_imds = settings.profile.is_none() && lower.contains("imds");
    let nothing_found = || {
        Failure::aws("no AWS credentials found (environment, ~/.aws files, SSO, container or instance role)")
            .hint("run `aws configure` or `aws sso login --profile NAME`, pass --profile NAME, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    };
    match err {
        _ if from_imds => nothing_found(),
        CredentialsError::CredentialsNotLoaded(_) | CredentialsError::InvalidConfiguration(_) if settings.profile.is_some() => {
            let why = if lower.contains("not enabled") || lower.contains("not defined") || lower.contains("could not find") {
                "it is not defined in ~/.aws/config or ~/.aws/credentials".to_owned()
            } else {
                detail
            };
            Failure::aws(format!("no usable AWS credentials for profile `{profile}`: {why}"))
                .hint(format!("`aws configure list-profiles` shows the profiles that exist; create it with `aws configure --profile {profile}` or `aws configure sso --profile {profile}`"))
        }
        CredentialsError::CredentialsNotLoaded(_) => nothing_found(),
        _ => Failure::aws(format!("could not load AWS credentials for profile `{profile}`: {detail}"))
            .hint("check the profile in ~/.aws/config (`aws configure list --profile NAME` shows what the AWS CLI sees)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_flag_disables_the_fast_path() {
        let settings = AwsSettings {
            region: Some("eu-west-1".into()),
            profile: Some("prod".into()),
            ..AwsSettings::default()
        };
        assert!(from_env(&settings).is_none());
    }

    #[test]
    fn profile_sections_are_named_like_the_aws_cli_writes_them() {
        assert_eq!(profile_section("default"), "default");
        assert_eq!(profile_section("prod"), "profile prod");
    }
}

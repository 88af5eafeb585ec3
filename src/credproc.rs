//! A profile's `credential_process`, run with bounds (issue 24): aws-config
//! buffers the helper's whole output and leaves it running when our API
//! timeout gives up on it, so a helper that never stops writing took 2 GB in
//! 2 s, and a stuck one ran on as an orphan. Here the helper runs in its own
//! process group, may write at most [`MAX_OUTPUT`], and the group is killed
//! when that cap is hit, when it fails, or when the caller stops waiting.

use std::borrow::Cow;
use std::process::Stdio;

use aws_credential_types::Credentials;
use aws_credential_types::credential_feature::AwsCredentialFeature;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials};
use aws_smithy_types::date_time::{DateTime, Format};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};

/// More than any real helper writes (its JSON is a few kilobytes).
pub const MAX_OUTPUT: u64 = 1024 * 1024;

/// The `credential_process` of `profile`, when that is how the SDK would get
/// its credentials: the profile has one and nothing that takes precedence
/// over it (a role to assume, SSO, web identity or static keys).
pub async fn command_for(profile: &str) -> Option<String> {
    use aws_runtime::env_config::file::EnvConfigFiles;
    use aws_types::os_shim_internal::{Env, Fs};
    let set = aws_config::profile::parser::load(
        &Fs::real(),
        &Env::real(),
        &EnvConfigFiles::default(),
        Some(Cow::Owned(profile.to_owned())),
    )
    .await
    .ok()?;
    let profile = set.get_profile(profile)?;
    let precedes = [
        "role_arn",
        "web_identity_token_file",
        "sso_session",
        "sso_start_url",
        "aws_access_key_id",
        "credential_source",
    ];
    if precedes.iter().any(|key| profile.get(key).is_some()) {
        return None;
    }
    profile.get("credential_process").map(str::to_owned)
}

/// A credentials provider that runs `command` under the bounds above.
#[derive(Debug)]
pub struct BoundedProcess {
    command: String,
}

impl BoundedProcess {
    pub fn new(command: String) -> BoundedProcess {
        BoundedProcess { command }
    }

    async fn run(&self) -> provider::Result {
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", &self.command])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("could not start it: {e}")))?;
        // Dropped on every way out, the guard kills whatever the helper left
        // behind in its group (it may have forked).
        let _group = child.id().map(|pid| Group(Pid::from_raw(pid as i32)));
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(fail("its output could not be read".to_owned()));
        };
        let (out, err) = tokio::try_join!(capped(stdout), capped(stderr))
            .map_err(|e| fail(format!("reading its output failed: {e}")))?;
        let (Some(out), Some(err)) = (out, err) else {
            return Err(fail(format!(
                "it wrote more than {} KiB; it was stopped",
                MAX_OUTPUT / 1024
            )));
        };
        let status = child
            .wait()
            .await
            .map_err(|e| fail(format!("waiting for it failed: {e}")))?;
        if !status.success() {
            let stderr = String::from_utf8_lossy(&err);
            let stderr: String = stderr.trim().chars().take(500).collect();
            return Err(fail(format!("it exited with {status}: {stderr}")));
        }
        parse(&out).map_err(|why| fail(format!("its output is not usable: {why}")))
    }
}

impl ProvideCredentials for BoundedProcess {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(self.run())
    }
}

fn fail(why: String) -> CredentialsError {
    CredentialsError::provider_error(format!("credential_process: {why}"))
}

/// Kills a process group when dropped.
struct Group(Pid);

impl Drop for Group {
    fn drop(&mut self) {
        // ESRCH (already gone) is the usual, fine outcome.
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}

/// All of `reader`, or `None` past [`MAX_OUTPUT`].
async fn capped(reader: impl AsyncRead + Unpin) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    reader.take(MAX_OUTPUT + 1).read_to_end(&mut buf).await?;
    Ok((buf.len() as u64 <= MAX_OUTPUT).then_some(buf))
}

/// The helper's JSON, as the AWS CLI documents it (`Version` 1).
fn parse(out: &[u8]) -> Result<Credentials, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        version: Option<u64>,
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
        expiration: Option<String>,
    }
    let out: Output = serde_json::from_slice(out).map_err(|e| {
        // serde's message may quote the input, which holds secrets.
        format!(
            "not the expected JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    if out.version != Some(1) {
        return Err("`Version` must be 1".to_owned());
    }
    let expiry = match &out.expiration {
        Some(text) => Some(
            DateTime::from_str(text, Format::DateTime)
                .ok()
                .and_then(|t| std::time::SystemTime::try_from(t).ok())
                .ok_or_else(|| "`Expiration` is not an RFC 3339 time".to_owned())?,
        ),
        None => None,
    };
    let mut credentials = Credentials::new(
        out.access_key_id,
        out.secret_access_key,
        out.session_token,
        expiry,
        "CredentialProcess",
    );
    // What the SDK's own provider records, so `doctor` names the source.
    credentials
        .get_property_mut_or_default::<Vec<AwsCredentialFeature>>()
        .push(AwsCredentialFeature::CredentialsProcess);
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_format_without_echoing_secrets() {
        let ok = parse(br#"{"Version":1,"AccessKeyId":"AK","SecretAccessKey":"S","SessionToken":"T","Expiration":"2030-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(ok.access_key_id(), "AK");
        assert!(ok.expiry().is_some());
        let err =
            parse(br#"{"Version":1,"AccessKeyId":"AK","SecretAccessKey":"SECRET""#).unwrap_err();
        assert!(!err.contains("SECRET"), "{err}");
        assert!(parse(br#"{"Version":2,"AccessKeyId":"A","SecretAccessKey":"S"}"#).is_err());
    }
}

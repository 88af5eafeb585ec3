//! From a [`Target`] to tokens: the async runtime, [`Resolved`] (the target
//! with its AWS side: credentials, region, endpoint), credential renewal and
//! minting. Commands, `connect`, `pgenv` and the REPL depend on this; it
//! depends only on the steps below it (`endpoint`, `aws`, `target`, `token`).
//!
//! Built for a process that mints for hours as well as for one token: a
//! `Resolved` is `Send + Sync`, so one `Arc<Resolved>` (one credentials
//! provider) serves every connection, and [`Resolved::mint_renewed`] may be
//! called from many tasks at once; they share one renewal when the
//! credentials run low.

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use crate::aws::{self, Aws};
use crate::endpoint::{self, Endpoint};
use crate::engine::Engine;
use crate::output::warn;
use crate::target::{Selector, Target};
use crate::token::{self as iam_token, Token, TokenRequest};

/// A current-thread runtime, built only by commands that touch the network.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// A target with its AWS side resolved: credentials, region, endpoint.
pub struct Resolved {
    pub target: Target,
    pub aws: Aws,
    pub endpoint: Endpoint,
}

impl Resolved {
    /// Resolve without a runtime when nothing needs the network: `--host`
    /// with keys and region in the environment.
    pub fn local(target: &Target) -> Option<Resolved> {
        let Selector::Host(host) = &target.selector else {
            return None;
        };
        let aws = aws::from_env(&target.aws)?;
        Some(Resolved {
            endpoint: Endpoint::host(host, target.port, target.engine.unwrap_or_default()),
            target: target.clone(),
            aws,
        })
    }

    /// Resolve through the SDK's providers and the RDS API.
    pub async fn load(target: &Target) -> Result<Resolved> {
        let aws = aws::load(&target.aws).await?;
        let endpoint = match &target.selector {
            Selector::Host(host) => {
                Endpoint::host(host, target.port, target.engine.unwrap_or_default())
            }
            selector => endpoint::resolve(&aws.rds()?, selector, target.port)
                .await
                .map_err(|err| endpoint::naming_endpoint(err, &aws.rds_endpoint()))?,
        };
        if endpoint.iam == Some(false) {
            warn(&format!(
                "IAM database authentication is off on {} `{}`; the database will refuse this token\n  turn it on with: {}",
                endpoint.kind,
                endpoint.name,
                endpoint.enable_iam_hint()
            ));
        }
        Ok(Resolved {
            target: target.clone(),
            aws,
            endpoint,
        })
    }

    /// Exit 2 unless the endpoint speaks `serves`, naming the command that
    /// serves it instead (`rdsiam COMMAND` serves `serves` only).
    pub fn require(&self, serves: Engine, command: &str) -> Result<()> {
        let endpoint = &self.endpoint;
        crate::engine::require(
            endpoint.family,
            serves,
            command,
            &format!("{} `{}`", endpoint.kind, endpoint.name),
        )
    }

    /// A token for this endpoint signed now with the credentials at hand (no
    /// I/O: for one-shot commands that just loaded them).
    pub fn mint(&self) -> Result<Token> {
        iam_token::generate(
            &TokenRequest {
                host: &self.endpoint.host,
                port: self.endpoint.port,
                user: &self.target.user,
                region: &self.aws.region,
            },
            &self.aws.credentials(),
            SystemTime::now(),
        )
    }

    /// A token for a new connection: credentials renewed first when they
    /// expire within minutes, so a long-lived process never signs with dead
    /// ones. Safe to call from many tasks at once.
    pub async fn mint_renewed(&self) -> Result<Token> {
        self.aws.renew_if_expiring().await?;
        self.mint()
    }
}

/// Resolve `target`, on the fast path when possible.
pub fn resolve_blocking(target: &Target) -> Result<Resolved> {
    if let Some(resolved) = Resolved::local(target) {
        return Ok(resolved);
    }
    runtime()?.block_on(Resolved::load(target))
}

/// Renew credentials this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

impl Aws {
    fn expiring(&self) -> bool {
        self.credentials()
            .expiry()
            .is_some_and(|at| at <= SystemTime::now() + RENEW_BEFORE)
    }

    /// Ask the provider again when the credentials expire within minutes, so
    /// a reconnect never signs with dead ones. Concurrent callers wait for
    /// one renewal (single flight) instead of each asking the provider.
    /// Ask the provider again now (a token signed with the credentials at
    /// hand was refused: they may have been rotated or revoked). `false`
    /// when there is no provider to ask (static keys from the environment).
    pub async fn renew_now(&self) -> Result<bool> {
        let Some(provider) = &self.provider else {
            return Ok(false);
        };
        let _one_at_a_time = self.renewing.lock().await;
        let fresh = aws::provide(provider, &self.settings).await?;
        *self.credentials.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(true)
    }

    pub async fn renew_if_expiring(&self) -> Result<()> {
        let Some(provider) = &self.provider else {
            return Ok(());
        };
        if !self.expiring() {
            return Ok(());
        }
        let _one_at_a_time = self.renewing.lock().await;
        // Another task may have renewed while this one waited.
        if !self.expiring() {
            return Ok(());
        }
        let fresh = aws::provide(provider, &self.settings).await?;
        *self.credentials.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }
}

// Shared across tasks in a long-running process.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Resolved>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_credential_types::Credentials;
    use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};

    use crate::endpoint::Endpoint;
    use crate::target::AwsSettings;

    /// A provider that counts its calls and takes a moment to answer.
    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        gives: Credentials,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::new(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(self.gives.clone())
            })
        }
    }

    fn resolved(aws: Aws) -> Resolved {
        Resolved {
            target: Target {
                selector: Selector::Host("h.example".into()),
                port: None,
                engine: None,
                user: "u".into(),
                dbname: None,
                aws: AwsSettings::default(),
            },
            aws,
            endpoint: Endpoint::host("h.example", None, Default::default()),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn expiring_credentials_are_renewed_from_their_provider() {
        let now = SystemTime::now();
        let old = Credentials::new("OLD", "s", None, Some(now + Duration::from_secs(60)), "t");
        let fresh = Credentials::new("NEW", "s", None, Some(now + Duration::from_secs(3600)), "t");
        let aws = Aws::for_tests(old.clone(), Some(SharedCredentialsProvider::new(fresh)));
        aws.renew_if_expiring().await.unwrap();
        assert_eq!(aws.credentials().access_key_id(), "NEW");

        // Long-lived ones are left alone, and without a provider nothing happens.
        let lasting = Credentials::new(
            "KEEP",
            "s",
            None,
            Some(now + Duration::from_secs(3600)),
            "t",
        );
        let aws = Aws::for_tests(lasting, Some(SharedCredentialsProvider::new(old.clone())));
        aws.renew_if_expiring().await.unwrap();
        assert_eq!(aws.credentials().access_key_id(), "KEEP");
        let aws = Aws::for_tests(old, None);
        aws.renew_if_expiring().await.unwrap();
        assert_eq!(aws.credentials().access_key_id(), "OLD");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn many_tasks_minting_share_one_provider_and_one_renewal() {
        let now = SystemTime::now();
        let calls = Arc::new(AtomicUsize::new(0));
        let provider = SharedCredentialsProvider::new(Counting {
            calls: calls.clone(),
            gives: Credentials::new("NEW", "s", None, Some(now + Duration::from_secs(3600)), "t"),
        });
        let old = Credentials::new("OLD", "s", None, Some(now + Duration::from_secs(10)), "t");
        let shared = Arc::new(resolved(Aws::for_tests(old, Some(provider))));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let shared = shared.clone();
                tokio::spawn(async move { shared.mint_renewed().await })
            })
            .collect();
        for task in tasks {
            let token = task.await.unwrap().unwrap();
            assert!(token.value.expose().contains("X-Amz-Credential=NEW%2F"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one renewal for all");
    }
}

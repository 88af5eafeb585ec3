//! Credentials kept fresh while the proxy idles. Logins renew expiring
//! credentials on their own, but a sidecar whose app is quiet would let
//! them run out: /readiness would then fail (and Kubernetes take the pod
//! out of its Service) until some login came, which it no longer would.
//! So the proxy renews ahead of expiry itself: five minutes before, or at
//! half the remaining life for credentials shorter-lived than that.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::log::Value;
use super::{Shared, Upstream};

/// How long to wait after a failed renewal before trying again.
const RETRY: Duration = Duration::from_secs(10);

pub async fn keep_fresh(shared: Arc<Shared>, upstreams: Vec<Arc<Upstream>>) {
    let mut wait_at_least = Duration::from_secs(1);
    loop {
        let soonest = upstreams
            .iter()
            .filter_map(|up| up.resolved.aws.credentials().expiry())
            .min();
        // Static credentials (no expiry) never need renewing.
        let Some(expiry) = soonest else { return };
        let left = expiry.duration_since(SystemTime::now()).unwrap_or_default();
        let wait = left
            .saturating_sub(Duration::from_secs(300))
            .max(left / 2)
            .max(wait_at_least);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shared.stop.cancelled() => return,
        }
        wait_at_least = Duration::from_secs(1);
        for up in &upstreams {
            let aws = &up.resolved.aws;
            match aws.renew_if_expiring().await {
                Ok(()) => shared.note_credentials(aws),
                Err(err) => {
                    // The message says what failed and what to run; never a secret.
                    let why = crate::error::render(&err);
                    shared.log.line(
                        "credentials-renewal-failed",
                        &[
                            ("target", Value::Str(&up.name)),
                            ("error", Value::Str(why.trim())),
                        ],
                    );
                    wait_at_least = RETRY;
                }
            }
        }
    }
}

//! Admission limits: at most `--max-connections` client connections at once
//! and at most `--max-connection-rate` new upstream logins a second (RDS
//! throttles IAM logins at 200/s per instance). Logins over the rate wait
//! their turn in arrival order (tokio's mutex is fair) instead of failing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

pub struct Limits {
    pub max_connections: usize,
    connections: Arc<Semaphore>,
    interval: Duration,
    next_slot: tokio::sync::Mutex<Instant>,
}

impl Limits {
    pub fn new(max_connections: usize, per_second: u32) -> Limits {
        Limits {
            max_connections,
            connections: Arc::new(Semaphore::new(max_connections)),
            interval: Duration::from_secs(1) / per_second.max(1),
            next_slot: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    /// A connection slot, or `None` when all are taken.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.connections.clone().try_acquire_owned().ok()
    }

    /// Every connection slot is taken.
    pub fn at_capacity(&self) -> bool {
        self.connections.available_permits() == 0
    }

    /// Wait for this login's turn under the rate cap. The lock is held
    /// through the wait and the slot only taken once it comes, so a login
    /// abandoned while waiting (timed out, client gone) reserves nothing
    /// and does not push the later ones back.
    pub async fn login_turn(&self) {
        let mut next = self.next_slot.lock().await;
        let slot = (*next).max(Instant::now());
        tokio::time::sleep_until(slot).await;
        *next = slot + self.interval;
    }
}

/// Cancels a peer may send a second; more are dropped. A person presses
/// Ctrl-C a few times, a pooler cancels a few queries: never hundreds.
pub const CANCELS_PER_PEER: u32 = 10;

/// The sessions a CancelRequest may name (the BackendKeyData the proxy
/// relayed, with the uid that opened each) and each peer's recent cancels.
/// A key that isn't one of ours never costs a dial.
#[derive(Default)]
pub struct Cancels {
    keys: std::sync::Mutex<HashMap<CancelKey, Option<u32>>>,
    peers: std::sync::Mutex<HashMap<String, (Instant, u32)>>,
}

/// A session's BackendKeyData: its pid and secret key.
type CancelKey = (i32, Vec<u8>);

/// Why a cancel was dropped: the label for /metrics and the log's words.
pub type Dropped = (&'static str, &'static str);

impl Cancels {
    pub fn register(&self, pid: i32, key: Vec<u8>, uid: Option<u32>) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert((pid, key), uid);
        }
    }

    pub fn forget(&self, pid: i32, key: Vec<u8>) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.remove(&(pid, key));
        }
    }

    /// May this cancel go upstream? Its key must be one of ours, sent by
    /// the account whose session it is, and its peer under the rate.
    pub fn allow(&self, pid: i32, key: &[u8], uid: Option<u32>, peer: &str) -> Result<(), Dropped> {
        let owner = match self.keys.lock() {
            Ok(keys) => keys.get(&(pid, key.to_vec())).copied(),
            Err(_) => None,
        };
        match owner {
            None => {
                return Err((
                    "cancel_unknown_key",
                    "the key is not one of this proxy's sessions",
                ));
            }
            Some(Some(owner)) if uid.is_some_and(|uid| uid != owner) => {
                return Err((
                    "cancel_other_user",
                    "the session belongs to another account",
                ));
            }
            Some(_) => {}
        }
        let Ok(mut peers) = self.peers.lock() else {
            return Err(("cancel_rate", "too many cancels from this client"));
        };
        let now = Instant::now();
        if peers.len() > 4096 {
            peers.retain(|_, (since, _)| now.duration_since(*since) < Duration::from_secs(1));
        }
        let (since, count) = peers.entry(peer.to_owned()).or_insert((now, 0));
        if now.duration_since(*since) >= Duration::from_secs(1) {
            (*since, *count) = (now, 0);
        }
        if *count >= CANCELS_PER_PEER {
            return Err(("cancel_rate", "too many cancels from this client"));
        }
        *count += 1;
        Ok(())
    }
}

/// Each client connection holds two descriptors (client and upstream); the
/// usual soft limit of 1024 would cap the proxy near 500 connections, so
/// raise the soft limit towards the hard one, as far as the cap needs.
pub fn raise_fd_limit(max_connections: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let want = (max_connections as u64)
        .saturating_mul(2)
        .saturating_add(64);
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let target = want.min(hard);
        if target > soft {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, target, hard);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn logins_are_spaced_in_order() {
        let limits = Arc::new(Limits::new(2, 50));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let limits = limits.clone();
            tasks.push(tokio::spawn(async move {
                limits.login_turn().await;
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap() - start);
        }
        // Five logins at 50/s: the first at once, the last 80 ms later, in order.
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        assert!(times[0] < Duration::from_millis(20), "{times:?}");
        assert!(times[4] >= Duration::from_millis(80), "{times:?}");
        let a = limits.admit();
        let b = limits.admit();
        assert!(a.is_some() && b.is_some());
        assert!(limits.admit().is_none());
        drop(a);
        assert!(limits.admit().is_some());
    }

    #[test]
    fn cancels_need_our_key_and_are_rate_limited_per_peer() {
        let cancels = Cancels::default();
        assert_eq!(
            cancels
                .allow(7, &[1, 2, 3, 4], Some(0), "uid:0")
                .unwrap_err()
                .0,
            "cancel_unknown_key"
        );
        cancels.register(7, vec![1, 2, 3, 4], Some(1000));
        assert_eq!(
            cancels
                .allow(7, &[1, 2, 3, 4], Some(1001), "uid:1001")
                .unwrap_err()
                .0,
            "cancel_other_user"
        );
        for _ in 0..CANCELS_PER_PEER {
            cancels
                .allow(7, &[1, 2, 3, 4], Some(1000), "uid:1000")
                .unwrap();
        }
        assert_eq!(
            cancels
                .allow(7, &[1, 2, 3, 4], Some(1000), "uid:1000")
                .unwrap_err()
                .0,
            "cancel_rate"
        );
        cancels.forget(7, vec![1, 2, 3, 4]);
        assert_eq!(
            cancels
                .allow(7, &[1, 2, 3, 4], Some(1000), "uid:1000")
                .unwrap_err()
                .0,
            "cancel_unknown_key"
        );
    }

    #[tokio::test]
    async fn abandoned_logins_keep_no_slot() {
        let limits = Arc::new(Limits::new(1, 10));
        limits.login_turn().await;
        let start = Instant::now();
        // Five logins give up long before their turn at 100 ms intervals.
        let mut quitters = Vec::new();
        for _ in 0..5 {
            let limits = limits.clone();
            quitters.push(tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_millis(20), limits.login_turn()).await;
            }));
        }
        for q in quitters {
            q.await.unwrap();
        }
        limits.login_turn().await;
        // The next one gets the second slot, not the seventh.
        let waited = start.elapsed();
        assert!(waited < Duration::from_millis(300), "{waited:?}");
    }
}

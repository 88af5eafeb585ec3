//! The proxy's token cache: one token per user of an endpoint (host, port
//! and region are the endpoint's; the credentials are checked on every use),
//! shared by every login, renewed well before it runs out, and minted once
//! however many logins ask at the same moment (single flight: they wait on
//! the entry's lock while the first one mints).
//!
//! A token is valid 15 minutes and only checked when a connection opens, so
//! reusing one is safe until shortly before it expires; it is renewed after
//! two thirds of its life, or a minute before its credentials expire,
//! whichever comes first. The clock and the lifetime are injectable so the
//! tests can run past a token's life without waiting 15 minutes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;

use crate::token::Token;

/// A clock, so tests can move time.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

#[derive(Clone)]
struct Cached {
    token: Token,
    /// The access key the token was signed with: renewed credentials mean a new token.
    key_id: String,
    renew_at: SystemTime,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// Users with a cached token at most. Without a pinned user the names are
/// the clients' choice, so the map must not grow with every name tried.
const MAX_USERS: usize = 1024;

pub struct TokenCache {
    slots: Mutex<HashMap<String, Slot>>,
    clock: Clock,
    lifetime: Duration,
    max_users: usize,
}

impl TokenCache {
    pub fn new(clock: Clock, lifetime: Duration) -> TokenCache {
        TokenCache {
            slots: Mutex::new(HashMap::new()),
            clock,
            lifetime,
            max_users: MAX_USERS,
        }
    }

    #[cfg(test)]
    fn with_max_users(mut self, max_users: usize) -> TokenCache {
        self.max_users = max_users;
        self
    }

    /// The slot for `user`. A new user when the map is full first drops the
    /// slots nobody is using whose token is due for renewal (or was never
    /// minted); if every slot is still live, the login gets a slot of its
    /// own that is not kept.
    fn slot(&self, user: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(user) {
            return slot.clone();
        }
        if slots.len() >= self.max_users {
            let now = self.now();
            slots.retain(|_, slot| {
                Arc::strong_count(slot) > 1
                    || slot.try_lock().map_or(true, |entry| {
                        entry.as_ref().is_some_and(|c| now < c.renew_at)
                    })
            });
        }
        let slot = Slot::default();
        if slots.len() < self.max_users {
            slots.insert(user.to_owned(), slot.clone());
        }
        slot
    }

    pub fn now(&self) -> SystemTime {
        (self.clock)()
    }

    /// When a token minted at `signed` (expiring at `expires_at`) is renewed.
    fn renew_at(&self, signed: SystemTime, expires_at: SystemTime) -> SystemTime {
        let by_age = signed + self.lifetime * 2 / 3;
        let margin = (self.lifetime / 15).min(Duration::from_secs(60));
        let by_expiry = expires_at
            .checked_sub(margin)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        by_age.min(by_expiry)
    }

    /// A usable token for `user`: the cached one while it is fresh and
    /// signed with `key_id` (the access key in use now), else one from
    /// `mint` (called once per renewal with the time to sign at; it returns
    /// the token and the access key it signed with, which renewing
    /// credentials may have changed). Returns the token and whether it was minted.
    pub async fn get<F, Fut>(&self, user: &str, key_id: &str, mint: F) -> Result<(Token, bool)>
    where
        F: FnOnce(SystemTime) -> Fut,
        Fut: std::future::Future<Output = Result<(Token, String)>>,
    {
        let slot = self.slot(user);
        let mut entry = slot.lock().await;
        let now = self.now();
        if let Some(cached) = entry.as_ref()
            && cached.key_id == key_id
            && now < cached.renew_at
        {
            return Ok((cached.token.clone(), false));
        }
        let signed = now;
        let (mut token, signed_with) = mint(signed).await?;
        // The token's real validity is 15 minutes from signing; a shorter
        // injected lifetime only makes us renew sooner.
        token.expires_at = token.expires_at.min(signed + self.lifetime);
        *entry = Some(Cached {
            renew_at: self.renew_at(signed, token.expires_at),
            token: token.clone(),
            key_id: signed_with,
        });
        Ok((token, true))
    }
}

impl TokenCache {
    /// Forget `user`'s token (the database refused it), so the next login
    /// signs a new one.
    pub async fn forget(&self, user: &str) {
        let slot = self.slot(user);
        *slot.lock().await = None;
    }
}

/// Refused logins in a row after which a user's logins are answered from
/// the count, and for how long: a client retrying in a loop must not turn
/// into a storm of refused IAM logins (RDS throttles them per instance).
const REFUSALS_IN_A_ROW: u32 = 3;
const ANSWER_FROM_COUNT_FOR: Duration = Duration::from_secs(5);
/// A refusal older than this starts the count again.
const REFUSAL_MEMORY: Duration = Duration::from_secs(60);

/// Refused logins per user (issue 19).
#[derive(Default)]
pub struct Refusals {
    users: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Refusals {
    /// A login for `user` was refused (after the retry with a fresh token).
    pub fn note(&self, user: &str) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if users.len() >= MAX_USERS && !users.contains_key(user) {
            users.retain(|_, (_, at)| at.elapsed() < REFUSAL_MEMORY);
            if users.len() >= MAX_USERS {
                return;
            }
        }
        let entry = users.entry(user.to_owned()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= REFUSAL_MEMORY {
            entry.0 = 0;
        }
        *entry = (entry.0 + 1, Instant::now());
    }

    /// A login for `user` worked.
    pub fn clear(&self, user: &str) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users.remove(user);
    }

    /// `Some((refusals in a row, time left))` while `user`'s logins are
    /// answered from the count instead of asking the database again.
    pub fn answer_from_count(&self, user: &str) -> Option<(u32, Duration)> {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let (count, at) = users.get(user)?;
        let since = at.elapsed();
        (*count >= REFUSALS_IN_A_ROW && since < ANSWER_FROM_COUNT_FOR)
            .then(|| (*count, ANSWER_FROM_COUNT_FOR - since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Redacted;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    const KEY: &str = "A";

    fn fake_clock() -> (Clock, Arc<AtomicU64>) {
        let secs = Arc::new(AtomicU64::new(1_800_000_000));
        let s = secs.clone();
        let clock: Clock = Arc::new(move || {
            SystemTime::UNIX_EPOCH + Duration::from_secs(s.load(Ordering::SeqCst))
        });
        (clock, secs)
    }

    fn token(at: SystemTime, creds_expiry: Option<SystemTime>) -> Token {
        let fifteen = at + Duration::from_secs(900);
        Token {
            value: Redacted::new(format!(
                "t{}",
                at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
            )),
            expires_at: creds_expiry.map_or(fifteen, |c| c.min(fifteen)),
        }
    }

    #[tokio::test]
    async fn reuses_then_renews_after_two_thirds_of_its_life() {
        let (clock, secs) = fake_clock();
        let cache = TokenCache::new(clock, Duration::from_secs(900));
        let minted = AtomicUsize::new(0);
        let get = || async {
            cache
                .get("u", KEY, |at| {
                    minted.fetch_add(1, Ordering::SeqCst);
                    async move { Ok((token(at, None), KEY.to_owned())) }
                })
                .await
                .unwrap()
        };
        let (first, fresh) = get().await;
        assert!(fresh);
        secs.fetch_add(599, Ordering::SeqCst);
        let (again, fresh) = get().await;
        assert!(!fresh);
        assert_eq!(again.value, first.value);
        secs.fetch_add(1, Ordering::SeqCst);
        let (renewed, fresh) = get().await;
        assert!(fresh);
        assert_ne!(renewed.value, first.value);
        assert_eq!(minted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn new_credentials_or_expiring_ones_mean_a_new_token() {
        let (clock, secs) = fake_clock();
        let cache = TokenCache::new(clock.clone(), Duration::from_secs(900));
        let soon = clock() + Duration::from_secs(120);
        let (_, fresh) = cache
            .get("u", "A", |at| async move {
                Ok((token(at, Some(soon)), KEY.to_owned()))
            })
            .await
            .unwrap();
        assert!(fresh);
        // Never used within a minute of its credentials' expiry.
        secs.fetch_add(59, Ordering::SeqCst);
        let (_, fresh) = cache
            .get("u", "A", |at| async move {
                Ok((token(at, None), KEY.to_owned()))
            })
            .await
            .unwrap();
        assert!(!fresh);
        secs.fetch_add(2, Ordering::SeqCst);
        let (_, fresh) = cache
            .get("u", "A", |at| async move {
                Ok((token(at, None), KEY.to_owned()))
            })
            .await
            .unwrap();
        assert!(fresh);
        let (_, fresh) = cache
            .get("u", "B", |at| async move {
                Ok((token(at, None), KEY.to_owned()))
            })
            .await
            .unwrap();
        assert!(fresh, "another access key signs anew");
        let (_, fresh) = cache
            .get("other", "B", |at| async move {
                Ok((token(at, None), KEY.to_owned()))
            })
            .await
            .unwrap();
        assert!(fresh, "each user has its own token");
    }

    #[tokio::test]
    async fn the_map_of_users_stays_bounded() {
        let (clock, secs) = fake_clock();
        let cache = TokenCache::new(clock, Duration::from_secs(900)).with_max_users(2);
        let get = |user: &'static str| {
            let cache = &cache;
            async move {
                cache
                    .get(user, KEY, |at| async move {
                        Ok((token(at, None), KEY.to_owned()))
                    })
                    .await
                    .unwrap()
                    .1
            }
        };
        let users = || cache.slots.lock().unwrap().len();
        assert!(get("a").await);
        assert!(get("b").await);
        // Full of fresh tokens: a third user still logs in, uncached.
        assert!(get("c").await);
        assert_eq!(users(), 2);
        assert!(!get("a").await, "the live ones are kept");
        assert!(get("c").await, "the overflow was not kept");
        // Once the kept tokens are due for renewal their slots make room.
        secs.fetch_add(700, Ordering::SeqCst);
        assert!(get("d").await);
        assert!(!get("d").await, "d is cached now");
        assert!(users() <= 2, "{}", users());
    }

    #[test]
    fn refused_users_are_answered_from_the_count_for_a_while() {
        let refusals = Refusals::default();
        refusals.note("u");
        refusals.note("u");
        assert!(refusals.answer_from_count("u").is_none());
        refusals.note("u");
        let (count, left) = refusals.answer_from_count("u").unwrap();
        assert_eq!(count, 3);
        assert!(left <= ANSWER_FROM_COUNT_FOR);
        assert!(refusals.answer_from_count("other").is_none());
        refusals.clear("u");
        assert!(refusals.answer_from_count("u").is_none());
    }

    #[tokio::test]
    async fn a_forgotten_token_is_signed_anew() {
        let (clock, _) = fake_clock();
        let cache = TokenCache::new(clock, Duration::from_secs(900));
        let get = || async {
            cache
                .get("u", KEY, |at| async move {
                    Ok((token(at, None), KEY.to_owned()))
                })
                .await
                .unwrap()
                .1
        };
        assert!(get().await);
        assert!(!get().await);
        cache.forget("u").await;
        assert!(get().await, "the refused token is not used again");
    }

    #[tokio::test]
    async fn concurrent_logins_wait_for_one_mint() {
        let (clock, _) = fake_clock();
        let cache = Arc::new(TokenCache::new(clock, Duration::from_secs(900)));
        let minted = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let cache = cache.clone();
            let minted = minted.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get("u", "A", |at| async move {
                        minted.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok((token(at, None), KEY.to_owned()))
                    })
                    .await
                    .unwrap()
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(minted.load(Ordering::SeqCst), 1);
    }
}

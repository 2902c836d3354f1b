//! Agent tokens as the database last said, so that authenticating an agent request — two a
//! minute per agent, across the whole fleet — is a hash lookup, not a query. Only tokens the
//! database accepted are kept (an unknown token always costs a query, so guessing fills
//! nothing). Revocation through this `Store` drops its tokens at once; revocation by another
//! process (the admin CLI, another replica) is picked up by [`Store::spawn_revocation_watch`]
//! within its period, and every entry is re-read from the database after `TTL` regardless.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Store, StoreResult, now_ms, with_db};

/// Longest an entry is trusted without asking the database again.
const TTL: Duration = Duration::from_secs(600);
/// The watch re-reads revocations this far back, so a revoking process whose clock is behind
/// the server's by up to this much is still seen before the entry's TTL runs out.
const REVOCATION_WINDOW_MS: i64 = 10 * 60 * 1000;
/// More entries than any fleet has agents means something is wrong: start afresh.
const MAX_ENTRIES: usize = 2_000_000;

#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<String, (Uuid, Instant)>>,
}

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Uuid, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, token_hash: &str) -> Option<Uuid> {
        let entries = self.lock();
        entries.get(token_hash).filter(|(_, at)| at.elapsed() < TTL).map(|(m, _)| *m)
    }

    pub(crate) fn put(&self, token_hash: &str, machine_id: Uuid) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(token_hash.to_owned(), (machine_id, Instant::now()));
    }

    pub(crate) fn forget_tokens(&self, token_hashes: &[String]) {
        let mut entries = self.lock();
        for h in token_hashes {
            entries.remove(h);
        }
    }

    pub(crate) fn forget_machine(&self, machine_id: Uuid) {
        self.lock().retain(|_, (m, _)| *m != machine_id);
    }
}

impl Store {
    /// Tokens revoked in the last `REVOCATION_WINDOW_MS` (by anyone).
    async fn recently_revoked_tokens(&self) -> StoreResult<Vec<String>> {
        let since = now_ms().saturating_sub(REVOCATION_WINDOW_MS);
        let hashes = with_db!(self, p => {
            sqlx::query_scalar("SELECT token_hash FROM agent_credentials WHERE revoked_at >= $1")
                .bind(since)
                .fetch_all(p)
                .await?
        });
        Ok(hashes)
    }

    /// Drops the cached tokens that any process revoked, every `every` until `cancel`.
    pub fn spawn_revocation_watch(
        &self,
        every: Duration,
        cancel: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                match store.recently_revoked_tokens().await {
                    Ok(hashes) => store.tokens.forget_tokens(&hashes),
                    Err(e) => tracing::warn!(error = %e, "could not read revoked agent tokens"),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_forgotten_by_token_and_by_machine() {
        let cache = TokenCache::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        cache.put("ha", a);
        cache.put("ha2", a);
        cache.put("hb", b);
        assert_eq!(cache.get("ha"), Some(a));
        assert_eq!(cache.get("nope"), None);
        cache.forget_tokens(&["hb".to_owned()]);
        assert_eq!(cache.get("hb"), None);
        cache.forget_machine(a);
        assert_eq!((cache.get("ha"), cache.get("ha2")), (None, None));
    }
}

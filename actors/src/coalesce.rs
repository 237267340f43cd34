//! Request coalescing (single flight): concurrent identical requests share one provider call, the
//! first caller's work runs once and every caller waiting on the same key gets a clone of its result.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// Why a coalesced call gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoalesceError {
    /// The shared call panicked or was cancelled (runtime shutting down) before it produced a value.
    #[error("the shared call ended without a result (panicked or cancelled)")]
    Aborted,
}

/// Callers waiting on one in-flight call.
type Waiters<V> = Vec<oneshot::Sender<V>>;

struct Inner<K, V> {
    flights: Mutex<HashMap<K, Waiters<V>>>,
    saved: AtomicU64,
}

impl<K, V> Inner<K, V> {
    fn lock(&self) -> MutexGuard<'_, HashMap<K, Waiters<V>>> {
        // Poisoning only means a panic elsewhere while holding the lock; every change to the map is a
        // single step, so it stays consistent.
        self.flights.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs at most one call per key at a time; callers that arrive while it runs share its result.
///
/// This is coalescing, not caching: the key is forgotten as soon as the call finishes, so a later
/// identical request makes a new call. The call runs in its own tokio task, so it completes for the
/// waiters even if the caller that started it is dropped. Cloning is cheap (an `Arc` inside); clones
/// share the in-flight calls and the counter.
pub struct Coalescer<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Coalescer<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> Default for Coalescer<K, V> {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                flights: Mutex::new(HashMap::new()),
                saved: AtomicU64::new(0),
            }),
        }
    }
}

impl<K, V> std::fmt::Debug for Coalescer<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer")
            .field("in_flight", &self.inner.lock().len())
            .field("saved", &self.inner.saved.load(Ordering::Relaxed))
            .finish()
    }
}

impl<K, V> Coalescer<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + 'static,
{
    /// An empty coalescer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `make()`'s future for `key`, or joins the call already running for it.
    ///
    /// Returns the value and whether this caller shared another caller's call (a saved provider
    /// call). `make` is only called by the caller that starts the call, inside a spawned task.
    /// Errors only when the shared call panicked or was cancelled; every caller waiting on it gets
    /// [`CoalesceError::Aborted`] then, and the key is free again. For a fallible call, make `V` a
    /// `Result` (with a cloneable error) so that all waiters see the same outcome.
    pub async fn run<F, Fut>(&self, key: K, make: F) -> Result<(V, bool), CoalesceError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = V> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let shared = {
            let mut flights = self.inner.lock();
            match flights.get_mut(&key) {
                Some(waiters) => {
                    waiters.push(tx);
                    true
                }
                None => {
                    flights.insert(key.clone(), vec![tx]);
                    false
                }
            }
        };
        if shared {
            self.inner.saved.fetch_add(1, Ordering::Relaxed);
        } else {
            // No await between registering the flight and spawning it, so a cancelled caller
            // cannot leave the flight without its task. If the task dies, the landing's drop frees
            // the key and drops the waiters' senders, which wakes them with an error.
            let landing = Landing {
                inner: self.inner.clone(),
                key: Some(key),
            };
            tokio::spawn(async move {
                let value = make().await;
                landing.deliver(value);
            });
        }
        rx.await
            .map(|v| (v, shared))
            .map_err(|_| CoalesceError::Aborted)
    }

    /// Calls answered from another caller's call since this coalescer was made.
    pub fn saved(&self) -> u64 {
        self.inner.saved.load(Ordering::Relaxed)
    }

    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        self.inner.lock().len()
    }
}

/// Owned by the task that runs a call: frees the key when the call ends, however it ends.
struct Landing<K: Eq + Hash, V> {
    inner: Arc<Inner<K, V>>,
    /// `None` once delivered.
    key: Option<K>,
}

impl<K: Eq + Hash, V: Clone> Landing<K, V> {
    /// Frees the key and hands every waiter a clone of `value`.
    fn deliver(mut self, value: V) {
        let waiters = self
            .key
            .take()
            .and_then(|k| self.inner.lock().remove(&k))
            .unwrap_or_default();
        // The last waiter takes the value itself; a waiter that went away is skipped.
        let mut waiters = waiters.into_iter().filter(|w| !w.is_closed()).peekable();
        while let Some(w) = waiters.next() {
            if waiters.peek().is_some() {
                let _ = w.send(value.clone());
            } else {
                let _ = w.send(value);
                break;
            }
        }
    }
}

impl<K: Eq + Hash, V> Drop for Landing<K, V> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            // The call panicked or was cancelled: dropping the senders wakes the waiters.
            self.inner.lock().remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    fn counting(
        calls: &Arc<AtomicUsize>,
        ms: u64,
        value: u32,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = u32> + Send>> + Send + 'static {
        let calls = calls.clone();
        move || {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                calls.fetch_add(1, Ordering::SeqCst);
                value
            })
        }
    }

    async fn until(cond: impl Fn() -> bool) {
        for _ in 0..500 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("condition not reached");
    }

    #[tokio::test]
    async fn concurrent_identical_calls_share_one() {
        let c: Coalescer<String, u32> = Coalescer::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let runs = (0..50).map(|_| c.run("same".to_string(), counting(&calls, 50, 7)));
        let results = futures::future::join_all(runs).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let shared = results.iter().filter(|r| r.as_ref().unwrap().1).count();
        assert_eq!(shared, 49);
        assert!(results.iter().all(|r| r.as_ref().unwrap().0 == 7));
        assert_eq!(c.saved(), 49);
        assert_eq!(c.in_flight(), 0);
    }

    #[tokio::test]
    async fn different_keys_make_separate_calls() {
        let c: Coalescer<u32, u32> = Coalescer::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let runs = (0..5).map(|k| c.run(k, counting(&calls, 20, k * 10)));
        let results = futures::future::join_all(runs).await;
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        let got: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            got,
            [
                (0, false),
                (10, false),
                (20, false),
                (30, false),
                (40, false)
            ]
        );
        assert_eq!(c.saved(), 0);
    }

    #[tokio::test]
    async fn a_call_after_completion_is_a_new_call() {
        let c: Coalescer<&'static str, u32> = Coalescer::new();
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(c.run("k", counting(&calls, 5, 1)).await, Ok((1, false)));
        assert_eq!(c.run("k", counting(&calls, 5, 2)).await, Ok((2, false)));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(c.saved(), 0);
    }

    #[tokio::test]
    async fn a_dropped_leader_still_completes_for_waiters() {
        let c: Coalescer<&'static str, u32> = Coalescer::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let leader = tokio::spawn({
            let c = c.clone();
            let make = counting(&calls, 100, 42);
            async move { c.run("k", make).await }
        });
        until(|| c.in_flight() == 1).await;
        let waiter = tokio::spawn({
            let c = c.clone();
            let make = counting(&calls, 0, 0);
            async move { c.run("k", make).await }
        });
        until(|| c.saved() == 1).await;
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        assert_eq!(waiter.await.unwrap(), Ok((42, true)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(c.in_flight(), 0);
    }

    fn calls_panic() -> bool {
        true
    }

    #[tokio::test]
    async fn a_panicking_call_wakes_its_waiters_with_an_error() {
        let c: Coalescer<&'static str, u32> = Coalescer::new();
        let boom = || async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if calls_panic() {
                panic!("provider client bug");
            }
            0
        };
        let (a, b) = tokio::join!(c.run("k", boom), c.run("k", boom));
        assert_eq!(a, Err(CoalesceError::Aborted));
        assert_eq!(b, Err(CoalesceError::Aborted));
        assert_eq!(c.in_flight(), 0);
        // The key is free again.
        assert_eq!(c.run("k", || async { 3 }).await, Ok((3, false)));
    }
}

//! Live tail: subscribers receive every push of their tenant as it is acknowledged.
//!
//! Each subscriber has a small bounded queue. A push never waits for a subscriber: when
//! its queue is full the push's entries are recorded as dropped for it instead (at most
//! [`MAX_DROPPED`] remembered), so a slow client costs bounded memory and cannot slow
//! ingestion. When nobody tails a tenant, a push pays one atomic load.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::labels::Labels;
use crate::push::PushRequest;
use crate::tenant::TenantId;

/// Pushes a subscriber may have queued before further ones count as dropped.
const QUEUE: usize = 16;
/// Dropped entries remembered per subscriber until it reports them.
pub const MAX_DROPPED: usize = 1000;

struct Subscriber {
    id: u64,
    tenant: TenantId,
    tx: mpsc::Sender<Arc<PushRequest>>,
    dropped: Arc<Mutex<Vec<(i64, Labels)>>>,
}

#[derive(Default)]
pub(crate) struct TailRegistry {
    subscribers: Mutex<Vec<Subscriber>>,
    count: AtomicUsize,
    next_id: AtomicU64,
}

/// One live tail. Dropping it unsubscribes.
pub struct TailSubscription {
    rx: mpsc::Receiver<Arc<PushRequest>>,
    dropped: Arc<Mutex<Vec<(i64, Labels)>>>,
    registry: Arc<TailRegistry>,
    id: u64,
}

impl TailSubscription {
    /// The next acknowledged push of the tenant (`None` once the store is gone).
    pub async fn recv(&mut self) -> Option<Arc<PushRequest>> {
        self.rx.recv().await
    }

    /// Takes the `(timestamp, stream labels)` of entries dropped since the last call.
    pub fn take_dropped(&self) -> Vec<(i64, Labels)> {
        std::mem::take(&mut *self.dropped.lock().unwrap())
    }
}

impl Drop for TailSubscription {
    fn drop(&mut self) {
        let mut subs = self.registry.subscribers.lock().unwrap();
        subs.retain(|s| s.id != self.id);
        self.registry.count.store(subs.len(), Ordering::Release);
    }
}

impl TailRegistry {
    pub(crate) fn subscribe(self: &Arc<Self>, tenant: &TenantId) -> TailSubscription {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(Mutex::new(Vec::new()));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut subs = self.subscribers.lock().unwrap();
        subs.push(Subscriber { id, tenant: tenant.clone(), tx, dropped: dropped.clone() });
        self.count.store(subs.len(), Ordering::Release);
        TailSubscription { rx, dropped, registry: self.clone(), id }
    }

    /// Hands an acknowledged push to the tenant's subscribers.
    pub(crate) fn publish(&self, tenant: &TenantId, req: &PushRequest) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let subs = self.subscribers.lock().unwrap();
        let mut shared: Option<Arc<PushRequest>> = None;
        for s in subs.iter().filter(|s| &s.tenant == tenant) {
            let batch = shared.get_or_insert_with(|| Arc::new(req.clone())).clone();
            if let Err(mpsc::error::TrySendError::Full(batch)) = s.tx.try_send(batch) {
                let mut d = s.dropped.lock().unwrap();
                for st in &batch.streams {
                    for e in &st.entries {
                        if d.len() < MAX_DROPPED {
                            d.push((e.ts, st.labels.clone()));
                        }
                    }
                }
            }
        }
    }

    /// Live tails of a tenant.
    pub(crate) fn active(&self, tenant: &TenantId) -> usize {
        self.subscribers.lock().unwrap().iter().filter(|s| &s.tenant == tenant).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::{PushEntry, PushStream};

    fn push(n: usize) -> PushRequest {
        let labels = Labels::from_pairs([("a", "b")]).unwrap();
        PushRequest { streams: vec![PushStream { labels, entries: (0..n).map(|i| PushEntry { ts: i as i64, line: "x".into(), metadata: vec![] }).collect() }] }
    }

    #[tokio::test]
    async fn slow_subscribers_get_drops_not_unbounded_queues() {
        let reg = Arc::new(TailRegistry::default());
        let t: TenantId = "acme".parse().unwrap();
        let mut sub = reg.subscribe(&t);
        let other = reg.subscribe(&"globex".parse().unwrap());
        for _ in 0..QUEUE + 3 {
            reg.publish(&t, &push(2));
        }
        assert_eq!(sub.take_dropped().len(), 6, "3 pushes of 2 entries did not fit");
        assert!(sub.take_dropped().is_empty());
        assert_eq!(sub.recv().await.unwrap().entry_count(), 2);
        assert!(other.take_dropped().is_empty());
        assert_eq!(reg.active(&t), 1);
        drop(sub);
        assert_eq!(reg.active(&t), 0);
        reg.publish(&t, &push(1));
    }
}

//! Adding, listing and cancelling delete requests (see [`crate::deletes`]).

use std::sync::Arc;

use super::Store;
use crate::deletes::{self, DeleteRequest, DeleteStatus, LiveDelete};
use crate::error::{Result, StoreError};
use crate::tenant::TenantId;

/// Why a delete request cannot be cancelled (Loki's answers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    #[error("could not find delete request with given id")]
    NotFound,
    #[error("deletion of request which is in process or already processed is not allowed")]
    Processed,
    /// Past the cancel period (in ns) since its creation, and not forced.
    #[error("Cancellation of delete request past the deadline since its creation is not allowed. To force, use the ?force query parameter")]
    PastDeadline(i64),
    #[error("{0}")]
    Store(String),
}

impl Store {
    /// Records a delete request: from now on its entries are hidden from reads. `start`
    /// and `end` are inclusive Unix ns. Fails with `InvalidInput` when the query does not
    /// compile.
    pub fn add_delete_request(&self, tenant: &TenantId, query: &str, start: i64, end: i64, now: i64) -> Result<DeleteRequest> {
        if self.is_read_only() {
            return Err(StoreError::InvalidInput("the store is open read-only".into()));
        }
        let compiler = self.inner.cfg.delete_compiler.as_ref().ok_or_else(|| StoreError::InvalidInput("deletes are not configured".into()))?;
        let compiled = (compiler.0)(query).map_err(StoreError::InvalidInput)?;
        let t = self.tenant_or_create(tenant);
        let mut list = t.deletes.write().unwrap();
        // Loki's ids: 8 hex digits from a hash of tenant, time and query; unique per tenant.
        let mut salt = 0u64;
        let request_id = loop {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(tenant.as_str().as_bytes());
            h.update(&now.to_le_bytes());
            h.update(&salt.to_le_bytes());
            h.update(query.as_bytes());
            let id = format!("{:08x}", h.digest() as u32);
            if !list.iter().any(|d| d.req.request_id == id) {
                break id;
            }
            salt += 1;
        };
        let req = DeleteRequest { request_id, query: query.to_string(), start, end, created_at: now, status: DeleteStatus::Received };
        let mut next = list.clone();
        next.push(Arc::new(LiveDelete { req: req.clone(), compiled }));
        deletes::store(&t.dir, &next)?;
        *list = next;
        Ok(req)
    }

    /// The tenant's delete requests, oldest first.
    pub fn delete_requests(&self, tenant: &TenantId) -> Vec<DeleteRequest> {
        let Some(t) = self.tenant(tenant) else { return Vec::new() };
        let mut v: Vec<DeleteRequest> = t.deletes.read().unwrap().iter().map(|d| d.req.clone()).collect();
        v.sort_by_key(|r| r.created_at);
        v
    }

    /// Cancels a request that is not processed yet. Past `cancel_period` after its
    /// creation that takes `force` (processing may be under way).
    pub fn cancel_delete_request(&self, tenant: &TenantId, id: &str, now: i64, cancel_period: i64, force: bool) -> std::result::Result<(), CancelError> {
        let t = self.tenant(tenant).ok_or(CancelError::NotFound)?;
        let mut list = t.deletes.write().unwrap();
        let d = list.iter().find(|d| d.req.request_id == id).ok_or(CancelError::NotFound)?;
        if d.req.status == DeleteStatus::Processed {
            return Err(CancelError::Processed);
        }
        if !force && d.req.created_at.saturating_add(cancel_period) < now {
            return Err(CancelError::PastDeadline(cancel_period));
        }
        let next: Vec<Arc<LiveDelete>> = list.iter().filter(|d| d.req.request_id != id).cloned().collect();
        deletes::store(&t.dir, &next).map_err(|e| CancelError::Store(e.to_string()))?;
        *list = next;
        Ok(())
    }
}

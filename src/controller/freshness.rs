//! A reconcile never starts from an object older than the controller's own last status
//! write. The reflector cache lags the API server (under load, by seconds), and a
//! reconcile requeued soon after a write would otherwise decide from the status before it:
//! write the same status again (a write at steady state), or forget what the last write
//! recorded (a placement, a database still to offboard).
//!
//! Each status write records the resourceVersion it produced; a reconcile whose cached
//! object has another one fetches the object instead, once, and records what it got. When
//! the cache has caught up (the same resourceVersion) the record goes, so at steady state
//! nothing is fetched.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use kube::api::Api;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// uid -> the resourceVersion of the newest version of the object this process knows of
/// (its own status write, or a fetch), until the cache shows it.
#[derive(Default)]
pub struct Written {
    versions: Mutex<HashMap<String, String>>,
}

impl Written {
    /// Remembers the resourceVersion an own write (or a fetch) of the object `uid` returned.
    pub fn record(&self, uid: &str, resource_version: Option<String>) {
        let mut versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        match resource_version {
            Some(rv) if !uid.is_empty() => {
                versions.insert(uid.to_string(), rv);
            }
            _ => {
                versions.remove(uid);
            }
        }
    }

    /// Whether the cached version `cached` of `uid` may predate what this process wrote or
    /// fetched; false (and the record gone) once the cache shows that version.
    pub fn is_stale(&self, uid: &str, cached: Option<&str>) -> bool {
        let mut versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        match versions.get(uid) {
            None => false,
            Some(known) if Some(known.as_str()) == cached => {
                versions.remove(uid);
                false
            }
            Some(_) => true,
        }
    }

    pub fn forget(&self, uid: &str) {
        self.versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }

    pub fn len(&self) -> usize {
        self.versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The object to reconcile: `cached` when it is at least as new as this process's last
/// write of it, else fetched. None when it is gone meanwhile.
pub async fn latest<K>(
    api: &Api<K>,
    cached: Arc<K>,
    written: &Written,
) -> Result<Option<Arc<K>>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let uid = cached.uid().unwrap_or_default();
    if !written.is_stale(&uid, cached.resource_version().as_deref()) {
        return Ok(Some(cached));
    }
    match api.get_opt(&cached.name_any()).await? {
        Some(fresh) if fresh.uid().as_deref() == Some(uid.as_str()) => {
            written.record(&uid, fresh.resource_version());
            Ok(Some(Arc::new(fresh)))
        }
        // Gone, or deleted and created again under the same name: the cache brings it.
        _ => {
            written.forget(&uid);
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_until_the_cache_shows_the_written_version() {
        let w = Written::default();
        assert!(
            !w.is_stale("u", Some("1")),
            "nothing written: the cache is fine"
        );
        w.record("u", Some("5".into()));
        assert!(w.is_stale("u", Some("4")), "the cache predates the write");
        assert!(w.is_stale("u", Some("4")), "still, until it catches up");
        assert!(!w.is_stale("u", Some("5")));
        assert!(w.is_empty(), "caught up: nothing left to compare");
        assert!(
            !w.is_stale("u", Some("4")),
            "a later reconcile trusts the cache again"
        );
    }

    #[test]
    fn a_write_without_a_version_or_uid_records_nothing() {
        let w = Written::default();
        w.record("u", None);
        w.record("", Some("3".into()));
        assert!(w.is_empty());
    }
}

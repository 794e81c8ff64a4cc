//! Which watch events of a related kind start reconciles: an object whose trigger hash
//! changed, and every deletion. kube's `predicate_filter` is not enough on its own: it drops
//! a deletion whose object hashes as it did before, and a deleted object looks just like it
//! did, so whatever depends on it would not hear of it until its next resync.

use std::collections::HashMap;

use kube::ResourceExt;
use kube::runtime::watcher::Event;

pub struct Triggers<K> {
    hash: fn(&K) -> Option<u64>,
    seen: HashMap<(Option<String>, String), u64>,
}

impl<K: kube::Resource> Triggers<K> {
    /// `hash` names what matters of an object; `None` means the object never triggers.
    pub fn new(hash: fn(&K) -> Option<u64>) -> Self {
        Triggers {
            hash,
            seen: HashMap::new(),
        }
    }

    /// The object to map to the objects that depend on it, if this event matters.
    pub fn pass(&mut self, event: Event<K>) -> Option<K> {
        match event {
            Event::Apply(obj) | Event::InitApply(obj) => {
                let hash = (self.hash)(&obj)?;
                let before = self.seen.insert(key(&obj), hash);
                (before != Some(hash)).then_some(obj)
            }
            Event::Delete(obj) => {
                self.seen.remove(&key(&obj));
                Some(obj)
            }
            Event::Init | Event::InitDone => None,
        }
    }
}

fn key<K: kube::Resource>(obj: &K) -> (Option<String>, String) {
    (obj.namespace(), obj.name_any())
}

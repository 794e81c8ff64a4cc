//! Watch: a bounded history of change events (like the API server's watch cache) and
//! the newline-delimited JSON stream a watch request gets.
//!
//! - `resourceVersion=N` replays every event after N from the history, then streams;
//!   N older than the history's start gets one `ERROR` event with a 410 `Expired` Status
//!   (as the real server answers "too old resource version"), which makes kube-runtime's
//!   watcher re-list.
//! - no `resourceVersion`, or `0`: synthetic `ADDED` events for the current objects first;
//!   with `sendInitialEvents=true` they end with a bookmark annotated
//!   `k8s.io/initial-events-end`, as streaming lists expect.
//! - selectors are applied to both the old and new object, so an object that stops
//!   matching is seen as `DELETED` and one that starts matching as `ADDED`; as in the
//!   real watch cache, that `DELETED` carries the previous (still matching) object at the
//!   new resourceVersion.
//! - `allowWatchBookmarks=true` gets a `BOOKMARK` with the current resourceVersion every
//!   bookmark interval and, as from the real watch cache, 2 s before `timeoutSeconds`
//!   ends the stream (cleanly);
//! - metadata-only watches (`as=PartialObjectMetadata`) get `meta.k8s.io/v1`
//!   `PartialObjectMetadata` objects, bookmarks included.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::registry::{ResKey, ResourceType};
use super::selectors::Selectors;
use super::status::ApiError;
use super::store::{ObjRef, Store};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub rv: u64,
    pub key: ResKey,
    pub namespace: String,
    pub kind: EventType,
    pub object: Arc<Value>,
    /// The object before the change, to apply selectors to both sides.
    pub old: Option<Arc<Value>>,
}

pub(crate) struct History {
    events: VecDeque<Event>,
    limit: usize,
    /// Events up to this resourceVersion are forgotten.
    floor: u64,
    changes: watch::Sender<u64>,
}

impl History {
    pub fn new(limit: usize, changes: watch::Sender<u64>) -> History {
        History {
            events: VecDeque::new(),
            limit: limit.max(1),
            floor: 0,
            changes,
        }
    }

    pub fn push(
        &mut self,
        rv: u64,
        r: &ObjRef,
        kind: EventType,
        object: Arc<Value>,
        old: Option<Arc<Value>>,
    ) {
        self.events.push_back(Event {
            rv,
            key: r.key.clone(),
            namespace: r.namespace.clone(),
            kind,
            object,
            old,
        });
        while self.events.len() > self.limit {
            if let Some(e) = self.events.pop_front() {
                self.floor = e.rv;
            }
        }
        self.changes.send_replace(rv);
    }

    /// Forgets every event so far: any watch resuming from before now gets 410 Gone.
    pub fn compact(&mut self, current: u64) {
        self.events.clear();
        self.floor = current;
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn floor(&self) -> u64 {
        self.floor
    }

    pub fn after(&self, rv: u64) -> impl Iterator<Item = &Event> {
        let start = self.events.partition_point(|e| e.rv <= rv);
        self.events.range(start..)
    }
}

/// What a watch request asked for.
#[derive(Clone, Debug)]
pub(crate) struct WatchRequest {
    pub rt: ResourceType,
    pub version: String,
    pub namespace: Option<String>,
    pub selectors: Selectors,
    /// None or "0": start with the current state.
    pub resource_version: Option<u64>,
    pub send_initial_events: bool,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub metadata_only: bool,
}

/// The server state a watch needs.
#[derive(Clone)]
pub(crate) struct WatchContext {
    pub store: Arc<Mutex<Store>>,
    pub changes: watch::Receiver<u64>,
    pub closes: watch::Receiver<u64>,
    pub bookmark_interval: Duration,
}

/// The object as this watch presents it (requested version, or only metadata).
pub(crate) fn present(rt: &ResourceType, version: &str, obj: &Value, metadata_only: bool) -> Value {
    if metadata_only {
        return json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": obj["metadata"],
        });
    }
    let mut o = obj.clone();
    o["apiVersion"] = json!(rt.api_version(version));
    o
}

fn line(kind: &str, object: Value) -> Bytes {
    let mut bytes = serde_json::to_vec(&json!({"type": kind, "object": object})).expect("JSON");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn bookmark(req: &WatchRequest, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let (kind, api_version) = if req.metadata_only {
        (
            "PartialObjectMetadata".to_string(),
            "meta.k8s.io/v1".to_string(),
        )
    } else {
        (req.rt.kind.clone(), req.rt.api_version(&req.version))
    };
    line(
        "BOOKMARK",
        json!({"kind": kind, "apiVersion": api_version, "metadata": meta}),
    )
}

/// When the next BOOKMARK is due, as the watch cache decides (`nextBookmarkTime`): every
/// interval, but also 2 s before the watch times out; None once that moment has passed.
fn next_bookmark(now: Instant, deadline: Instant, interval: Duration) -> Option<Instant> {
    let periodic = now + interval;
    let before_end = deadline.checked_sub(Duration::from_secs(2))?;
    let next = periodic.min(before_end);
    (next > now).then_some(next)
}

struct WatchState {
    req: WatchRequest,
    ctx: WatchContext,
    cursor: u64,
    pending: VecDeque<Bytes>,
    started: bool,
    done: bool,
    deadline: Instant,
    next_bookmark: Option<Instant>,
}

impl WatchState {
    fn in_scope(&self, e: &Event) -> bool {
        e.key == self.req.rt.key()
            && self
                .req
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == e.namespace)
    }

    /// The event this watcher sees for `e`, if any, after selectors.
    fn translate(&self, e: &Event) -> Option<Bytes> {
        let sel = &self.req.selectors;
        let now_matches = sel.matches(&e.object);
        let was_matching = e.old.as_ref().is_some_and(|o| sel.matches(o));
        let kind = match (e.kind, was_matching, now_matches) {
            (EventType::Deleted, true, _) => EventType::Deleted,
            (EventType::Deleted, false, _) => return None,
            (_, false, true) => EventType::Added,
            (EventType::Modified, true, false) => {
                let mut previous = e.old.as_deref().cloned().unwrap_or_default();
                previous["metadata"]["resourceVersion"] =
                    e.object["metadata"]["resourceVersion"].clone();
                return Some(line(
                    "DELETED",
                    present(
                        &self.req.rt,
                        &self.req.version,
                        &previous,
                        self.req.metadata_only,
                    ),
                ));
            }
            (EventType::Added, true, false) => return None,
            (_, true, true) => e.kind,
            (_, false, false) => return None,
        };
        Some(line(
            kind.as_str(),
            present(
                &self.req.rt,
                &self.req.version,
                &e.object,
                self.req.metadata_only,
            ),
        ))
    }

    /// Queues what happened since the cursor (or the initial state); false when done.
    fn poll_store(&mut self) {
        let store = self.ctx.store.lock().expect("store lock");
        if !self.started {
            self.started = true;
            match self.req.resource_version.filter(|rv| *rv != 0) {
                Some(rv) => {
                    if rv < store.history.floor() {
                        let err = ApiError::expired(format!(
                            "too old resource version: {rv} ({})",
                            store.history.floor() + 1
                        ));
                        self.pending.push_back(line("ERROR", err.to_status()));
                        self.done = true;
                        return;
                    }
                    self.cursor = rv;
                }
                None => {
                    let ns = self.req.namespace.as_deref();
                    for obj in store.select(&self.req.rt, ns, &self.req.selectors) {
                        let o = present(
                            &self.req.rt,
                            &self.req.version,
                            &obj,
                            self.req.metadata_only,
                        );
                        self.pending.push_back(line("ADDED", o));
                    }
                    self.cursor = store.rv;
                    if self.req.send_initial_events {
                        self.pending.push_back(bookmark(&self.req, store.rv, true));
                    }
                    return;
                }
            }
        }
        if self.cursor < store.history.floor() {
            // the history moved past us while we were slow: as the real server, give up
            let err = ApiError::expired(format!(
                "too old resource version: {} ({})",
                self.cursor,
                store.history.floor() + 1
            ));
            self.pending.push_back(line("ERROR", err.to_status()));
            self.done = true;
            return;
        }
        let mut lines = vec![];
        for e in store.history.after(self.cursor) {
            if self.in_scope(e)
                && let Some(l) = self.translate(e)
            {
                lines.push(l);
            }
        }
        self.pending.extend(lines);
        self.cursor = self.cursor.max(store.rv);
    }
}

/// The body of a watch response.
pub(crate) fn stream(
    req: WatchRequest,
    ctx: WatchContext,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let now = Instant::now();
    let deadline = now + req.timeout;
    let state = WatchState {
        deadline,
        next_bookmark: next_bookmark(now, deadline, ctx.bookmark_interval),
        req,
        ctx,
        cursor: 0,
        pending: VecDeque::new(),
        started: false,
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(bytes) = st.pending.pop_front() {
                return Some((Ok(bytes), st));
            }
            if st.done {
                return None;
            }
            // mark changes seen before reading the store, so none is missed
            st.ctx.changes.borrow_and_update();
            st.poll_store();
            if !st.pending.is_empty() || st.done {
                continue;
            }
            let bookmark_at = st.next_bookmark.unwrap_or(st.deadline);
            let bookmarks = st.req.bookmarks && st.next_bookmark.is_some();
            tokio::select! {
                changed = st.ctx.changes.changed() => {
                    if changed.is_err() {
                        st.done = true;
                    }
                }
                _ = st.ctx.closes.changed() => st.done = true,
                _ = tokio::time::sleep_until(st.deadline) => st.done = true,
                _ = tokio::time::sleep_until(bookmark_at), if bookmarks => {
                    st.next_bookmark = next_bookmark(Instant::now(), st.deadline, st.ctx.bookmark_interval);
                    let rv = st.cursor;
                    st.pending.push_back(bookmark(&st.req, rv, false));
                }
            }
        }
    })
}

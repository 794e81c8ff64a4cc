//! Request recording: every request an instrumented client makes, in RBAC terms, for
//! assertions such as "the operator only used these verbs on these resources" (checks
//! the Helm chart's Role) and "nothing was written at steady state".

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use super::request_info::RequestInfo;

/// One request and how it ended.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub info: RequestInfo,
    /// HTTP status (a watch records 200 when its stream starts; 502 when the request
    /// could not be sent at all).
    pub status: u16,
    /// Whether a fault rule answered instead of the server.
    pub injected: bool,
    /// When the client sent it (it is logged when it ends: a write the test saw the
    /// effect of may be logged just after).
    pub started: std::time::Instant,
}

impl RecordedRequest {
    pub fn verb(&self) -> &str {
        &self.info.verb
    }

    pub fn is_write(&self) -> bool {
        self.info.is_write()
    }
}

impl std::fmt::Display for RecordedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} -> {}",
            self.info.verb, self.info.path, self.status
        )?;
        if !self.info.query.is_empty() {
            write!(f, " ?{}", self.info.query)?;
        }
        if self.injected {
            write!(f, " (injected)")?;
        }
        Ok(())
    }
}

/// The requests of one instrumented client. Cheap to clone; clones share the log.
#[derive(Clone, Default)]
pub struct RequestLog {
    entries: Arc<Mutex<Vec<RecordedRequest>>>,
}

impl RequestLog {
    pub(crate) fn push(&self, entry: RecordedRequest) {
        self.entries.lock().expect("log lock").push(entry);
    }

    pub fn all(&self) -> Vec<RecordedRequest> {
        self.entries.lock().expect("log lock").clone()
    }

    /// A position to pass to [`RequestLog::since`].
    pub fn mark(&self) -> usize {
        self.entries.lock().expect("log lock").len()
    }

    pub fn since(&self, mark: usize) -> Vec<RecordedRequest> {
        self.entries.lock().expect("log lock")[mark..].to_vec()
    }

    /// Writes sent after `instant`, whenever they ended.
    pub fn writes_sent_after(&self, instant: std::time::Instant) -> Vec<RecordedRequest> {
        self.all()
            .into_iter()
            .filter(|r| r.is_write() && r.started > instant)
            .collect()
    }

    /// Writes (create, update, patch, delete, deletecollection) since `mark`.
    pub fn writes_since(&self, mark: usize) -> Vec<RecordedRequest> {
        self.since(mark)
            .into_iter()
            .filter(|r| r.is_write())
            .collect()
    }

    /// Waits until `window` passes with no write that `relevant` picks (at most 60 s; panics
    /// after that), and returns a mark from the end of that quiet window. Settling by quiet
    /// instead of a fixed sleep lets a late benign write (an Event after its status write on
    /// a loaded machine) land before the steady state is measured; a write loop never goes
    /// quiet, so it still fails.
    pub async fn settle(
        &self,
        window: std::time::Duration,
        relevant: impl Fn(&RecordedRequest) -> bool,
    ) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let mark = self.mark();
            tokio::time::sleep(window).await;
            let writes = self.writes_since(mark);
            let Some(write) = writes.iter().find(|w| relevant(w)) else {
                return self.mark();
            };
            assert!(
                std::time::Instant::now() < deadline,
                "writes never stopped, the latest: {write}"
            );
        }
    }

    pub fn clear(&self) {
        self.entries.lock().expect("log lock").clear();
    }

    /// (resource as RBAC names it, verb) pairs used, e.g. `("jobs.batch", "create")`,
    /// `("widgets.conformance.servicedb.io/status", "patch")`.
    pub fn permissions(&self) -> BTreeSet<(String, String)> {
        self.all()
            .iter()
            .filter(|r| r.info.is_resource())
            .map(|r| (r.info.rbac_resource(), r.info.verb.clone()))
            .collect()
    }

    /// How many requests used `verb` on `rbac_resource`.
    pub fn count(&self, verb: &str, rbac_resource: &str) -> usize {
        self.all()
            .iter()
            .filter(|r| r.info.verb == verb && r.info.rbac_resource() == rbac_resource)
            .count()
    }
}

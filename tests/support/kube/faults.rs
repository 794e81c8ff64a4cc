//! Client-side fault injection: rules that make a client's matching requests fail, wait,
//! or see their watches end or expire. They act in the client (see `instrument.rs`), so
//! they work the same against the fake and against a real cluster.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::request_info::RequestInfo;

/// What to do to requests that match a verb and a path pattern.
///
/// ```ignore
/// faults.inject(Fault::on("patch", "*/widgets/*").status(409).times(1));
/// faults.inject(Fault::on("create|update|patch", "*").status(429).retry_after(1).times(2));
/// faults.inject(Fault::on("*", "*").delay(Duration::from_millis(50)).always());
/// faults.inject(Fault::on("watch", "*/widgets").watch_expired().times(1));
/// ```
#[derive(Clone, Debug)]
pub struct Fault {
    verbs: Vec<String>,
    path: String,
    status: Option<u16>,
    message: Option<String>,
    retry_after: Option<u64>,
    delay: Option<Duration>,
    watch_expired: bool,
    watch_lag: Option<Duration>,
    remaining: Option<usize>,
}

impl Fault {
    /// Requests whose RBAC verb is one of `verbs` (`|`-separated, `*` for any) and whose
    /// URL path matches `path_pattern` (`*` matches any run of characters, `/` included).
    /// Applies once unless [`Fault::times`] or [`Fault::always`] says otherwise.
    pub fn on(verbs: &str, path_pattern: &str) -> Fault {
        Fault {
            verbs: verbs.split('|').map(|v| v.trim().to_string()).collect(),
            path: path_pattern.to_string(),
            status: None,
            message: None,
            retry_after: None,
            delay: None,
            watch_expired: false,
            watch_lag: None,
            remaining: Some(1),
        }
    }

    /// Answer with this HTTP status and a matching `Status` body instead of sending.
    pub fn status(mut self, code: u16) -> Fault {
        self.status = Some(code);
        self
    }

    /// The `message` of the injected `Status`.
    pub fn message(mut self, message: &str) -> Fault {
        self.message = Some(message.into());
        self
    }

    /// Adds a `Retry-After` header (and `details.retryAfterSeconds`), as a 429 has.
    pub fn retry_after(mut self, seconds: u64) -> Fault {
        self.retry_after = Some(seconds);
        self
    }

    /// Wait this long before sending (or before failing).
    pub fn delay(mut self, delay: Duration) -> Fault {
        self.delay = Some(delay);
        self
    }

    /// For watches: answer 200 with a single `ERROR` event carrying a 410 Expired
    /// Status, as the API server does for a resourceVersion too old for its history.
    pub fn watch_expired(mut self) -> Fault {
        self.watch_expired = true;
        self
    }

    /// For watches: deliver every event of the stream `lag` late, as a watch cache that
    /// lags the API server does (a reflector then holds objects older than the writes the
    /// client has made).
    pub fn watch_lag(mut self, lag: Duration) -> Fault {
        self.watch_lag = Some(lag);
        self
    }

    /// Apply to the next `n` matching requests.
    pub fn times(mut self, n: usize) -> Fault {
        self.remaining = Some(n);
        self
    }

    /// Apply to every matching request until [`Faults::clear`].
    pub fn always(mut self) -> Fault {
        self.remaining = None;
        self
    }

    fn matches(&self, info: &RequestInfo) -> bool {
        let verb_ok = self.verbs.iter().any(|v| v == "*" || *v == info.verb);
        verb_ok && glob(&self.path, &info.path) && self.remaining != Some(0)
    }
}

/// `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// What the client does with one request.
#[derive(Clone, Debug, Default)]
pub(crate) struct Action {
    pub delay: Option<Duration>,
    pub status: Option<(u16, Option<String>, Option<u64>)>,
    pub watch_expired: bool,
    pub watch_lag: Option<Duration>,
}

struct State {
    rules: Vec<Fault>,
    injected: usize,
}

/// The fault rules of one instrumented client. Cheap to clone; clones share rules.
#[derive(Clone)]
pub struct Faults {
    state: Arc<Mutex<State>>,
    closes: Arc<watch::Sender<u64>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            state: Arc::new(Mutex::new(State {
                rules: vec![],
                injected: 0,
            })),
            closes: Arc::new(watch::channel(0).0),
        }
    }
}

impl Faults {
    pub fn inject(&self, fault: Fault) {
        self.state.lock().expect("faults lock").rules.push(fault);
    }

    /// Shorthand: the next `n` requests matching `verbs` and `path_pattern` get `status`.
    pub fn fail_next(&self, verbs: &str, path_pattern: &str, status: u16, n: usize) {
        self.inject(Fault::on(verbs, path_pattern).status(status).times(n));
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.state.lock().expect("faults lock").rules.clear();
    }

    /// How many requests were failed or expired by a rule so far.
    pub fn injected(&self) -> usize {
        self.state.lock().expect("faults lock").injected
    }

    /// Ends this client's open watch streams now (cleanly, as a server timeout does).
    pub fn close_watches(&self) {
        self.closes.send_modify(|n| *n += 1);
    }

    pub(crate) fn close_signal(&self) -> watch::Receiver<u64> {
        self.closes.subscribe()
    }

    /// The action for a request, consuming one use of each matching rule.
    pub(crate) fn take(&self, info: &RequestInfo) -> Action {
        let mut state = self.state.lock().expect("faults lock");
        let mut action = Action::default();
        for rule in state.rules.iter_mut().filter(|r| r.matches(info)) {
            if let Some(n) = rule.remaining.as_mut() {
                *n -= 1;
            }
            if let Some(d) = rule.delay {
                action.delay = Some(action.delay.unwrap_or_default() + d);
            }
            if action.status.is_none()
                && let Some(code) = rule.status
            {
                action.status = Some((code, rule.message.clone(), rule.retry_after));
            }
            action.watch_expired |= rule.watch_expired && info.verb == "watch";
            if info.verb == "watch" && rule.watch_lag.is_some() {
                action.watch_lag = rule.watch_lag;
            }
        }
        if action.status.is_some() || action.watch_expired {
            state.injected += 1;
        }
        state.rules.retain(|r| r.remaining != Some(0));
        action
    }
}

//! An instrumented `kube::Client`: a client whose every request passes through an
//! in-process middleware that records it and applies fault rules before forwarding it to
//! a plain client of the fake or of a real cluster.
//!
//! The middleware is an axum `Router` used as the client's tower service (kube's
//! `Client::new` accepts any service), because the tests cannot name tower's `Layer`
//! trait without adding `tower` to the dev-dependencies. The effect is the same as a
//! layer: nothing leaves the process, and it works against any API server.
//!
//! Differences from a layer below kube's own stack: faults are injected above kube's
//! retry layer, so an injected 429/503 reaches the caller instead of being retried, and a
//! request that could not be sent at all is reported as a 502 `Status`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures::StreamExt;

use super::faults::{Action, Faults};
use super::record::{RecordedRequest, RequestLog};
use super::request_info;
use super::server::error_response;
use super::status::ApiError;

/// A client whose requests are recorded and subject to fault rules.
#[derive(Clone)]
pub struct Instrumented {
    pub client: kube::Client,
    pub faults: Faults,
    pub requests: RequestLog,
}

#[derive(Clone)]
struct Middleware {
    inner: kube::Client,
    faults: Faults,
    log: RequestLog,
}

/// Wraps `inner` (which talks to the fake or to a real cluster).
pub fn instrument(inner: kube::Client) -> Instrumented {
    let default_ns = inner.default_namespace().to_string();
    let (router, faults, requests) = middleware(inner);
    Instrumented {
        client: kube::Client::new(router, default_ns),
        faults,
        requests,
    }
}

fn middleware(inner: kube::Client) -> (axum::Router, Faults, RequestLog) {
    let faults = Faults::default();
    let requests = RequestLog::default();
    let state = Middleware {
        inner,
        faults: faults.clone(),
        log: requests.clone(),
    };
    let router = axum::Router::new().fallback(forward).with_state(state);
    (router, faults, requests)
}

/// The middleware served over plain HTTP on 127.0.0.1, for a subprocess (`servicedb run`)
/// whose requests are to be recorded. Stops when dropped.
pub struct Served {
    /// `http://127.0.0.1:<port>`: the server URL to give the subprocess.
    pub url: String,
    pub faults: Faults,
    pub requests: RequestLog,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves [`instrument`]'s middleware in front of `inner`.
pub async fn serve_instrumented(inner: kube::Client) -> Served {
    let (router, faults, requests) = middleware(inner);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the recording proxy to a free port on 127.0.0.1");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Served {
        url: format!("http://{addr}"),
        faults,
        requests,
        task,
    }
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

fn injected_response(action: &Action) -> Option<Response> {
    if action.watch_expired {
        let status =
            ApiError::expired("too old resource version: injected by a test fault").to_status();
        let mut line = serde_json::to_vec(&serde_json::json!({"type": "ERROR", "object": status}))
            .expect("JSON");
        line.push(b'\n');
        let mut resp = Response::new(Body::from(line));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Some(resp);
    }
    let (code, message, retry_after) = action.status.clone()?;
    let message = message.unwrap_or_else(|| format!("injected by a test fault ({code})"));
    let mut err = ApiError::new(code, reason_for(code), message);
    err.retry_after = retry_after;
    Some(error_response(&err))
}

async fn forward(State(mw): State<Middleware>, req: Request) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let info = request_info::parse(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or_default(),
    );
    let action = mw.faults.take(&info);
    if let Some(delay) = action.delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(resp) = injected_response(&action) {
        mw.log.push(RecordedRequest {
            info,
            status: resp.status().as_u16(),
            injected: true,
            started,
        });
        return resp;
    }
    let bytes = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(e) => {
            return error_response(&ApiError::bad_request(format!(
                "reading the request body: {e}"
            )));
        }
    };
    let outbound = axum::http::Request::from_parts(parts, kube::client::Body::from(bytes.to_vec()));
    let resp = match mw.inner.send(outbound).await {
        Ok(resp) => resp,
        Err(e) => {
            mw.log.push(RecordedRequest {
                info,
                status: 502,
                injected: false,
                started,
            });
            return error_response(&ApiError::new(
                502,
                "InternalError",
                format!("sending the request: {e}"),
            ));
        }
    };
    mw.log.push(RecordedRequest {
        status: resp.status().as_u16(),
        injected: false,
        info: info.clone(),
        started,
    });
    let (parts, body) = resp.into_parts();
    let body = Body::new(body);
    if info.verb != "watch" {
        return Response::from_parts(parts, body);
    }
    // a watch ends early when the test closes this client's watches
    let mut closes = mw.faults.close_signal();
    let stream = match action.watch_lag {
        None => body.into_data_stream().boxed(),
        Some(lag) => lagging(body, lag),
    };
    let stream = stream.take_until(async move {
        let _ = closes.changed().await;
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// The body's chunks, each delivered `lag` after it arrived (a constant latency, not one
/// that grows with a burst of events).
fn lagging(
    body: Body,
    lag: std::time::Duration,
) -> futures::stream::BoxStream<'static, Result<axum::body::Bytes, axum::Error>> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut chunks = body.into_data_stream();
        while let Some(chunk) = chunks.next().await {
            if tx.send((tokio::time::Instant::now() + lag, chunk)).is_err() {
                break;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        let (due, chunk) = rx.recv().await?;
        tokio::time::sleep_until(due).await;
        Some((chunk, rx))
    })
    .boxed()
}

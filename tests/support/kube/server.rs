//! The fake API server: plain HTTP on 127.0.0.1, one handler that parses the request like
//! the real server (see `request_info.rs`), and dispatches to the store, discovery or a
//! watch stream. Runs on the runtime of the test that starts it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::admission::FieldValidation;
use super::discovery;
use super::rbac;
use super::registry::ResourceType;
use super::request_info::{self, RequestInfo};
use super::selectors::{FieldSelector, LabelSelector, Selectors};
use super::status::{self, ApiError, ApiResult};
use super::store::Store;
use super::watch::{self as watching, WatchContext, WatchRequest, present};
use super::write::{DeleteOptions, Propagation, WriteOptions};

/// Knobs of the fake.
#[derive(Clone, Debug)]
pub struct FakeOptions {
    /// How many change events watches can resume from; older resourceVersions get
    /// 410 Gone. Small, so tests reach kube-runtime's re-list path.
    pub history_limit: usize,
    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK.
    pub bookmark_interval: Duration,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            history_limit: 1000,
            bookmark_interval: Duration::from_secs(5),
        }
    }
}

struct Shared {
    store: Arc<Mutex<Store>>,
    closes: watch::Sender<u64>,
    options: FakeOptions,
    address: String,
}

/// An in-process Kubernetes API server for tests. Stops when dropped.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl FakeApiServer {
    pub async fn start() -> FakeApiServer {
        FakeApiServer::start_with(FakeOptions::default()).await
    }

    pub async fn start_with(options: FakeOptions) -> FakeApiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake API server to a free port on 127.0.0.1");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let (changes, _) = watch::channel(0);
        let (closes, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            store: Arc::new(Mutex::new(Store::new(options.history_limit, changes))),
            closes,
            options,
            address: addr.to_string(),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            // serve until aborted; an accept error ends the fake, which tests then see
            let _ = axum::serve(listener, app).await;
        });
        FakeApiServer { shared, addr, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube config for this server (plain HTTP, no auth, namespace `default`).
    pub fn config(&self) -> kube::Config {
        let mut config = kube::Config::new(self.url().parse().expect("a valid URL"));
        config.default_namespace = "default".into();
        config
    }

    /// Writes a kubeconfig for this server (no credentials; `namespace` as default), for
    /// subprocesses and kubectl.
    pub fn write_kubeconfig(&self, path: &std::path::Path, namespace: &str) {
        let doc = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url()}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
            "current-context": "fake",
        });
        let text = serde_yaml::to_string(&doc).expect("YAML");
        std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// A client of this server, straight, without recording or faults.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config()).expect("a client for the fake API server")
    }

    /// Ends every open watch cleanly (clients resume from their last resourceVersion).
    pub fn close_watches(&self) {
        self.shared.closes.send_modify(|n| *n += 1);
    }

    /// Forgets the watch history: a watch from any resourceVersion before now gets 410
    /// Gone, as after an etcd compaction.
    pub fn compact_history(&self) {
        let mut store = self.shared.store.lock().expect("store lock");
        let rv = store.rv;
        store.history.compact(rv);
    }

    /// The server's current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.lock().expect("store lock").rv
    }

    /// Number of objects of `plural` in `group` (all namespaces); for assertions that
    /// need no client.
    pub fn count(&self, group: &str, plural: &str) -> usize {
        let store = self.shared.store.lock().expect("store lock");
        let key = (group.to_string(), plural.to_string());
        match store.rt(&key) {
            Some(rt) => store.select(&rt, None, &Selectors::default()).len(),
            None => 0,
        }
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.close_watches();
        self.task.abort();
    }
}

fn json_response(code: u16, body: &Value) -> Response {
    let mut resp = (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        serde_json::to_vec(body).expect("JSON"),
    )
        .into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub(crate) fn error_response(err: &ApiError) -> Response {
    let mut resp = json_response(err.code, &err.to_status());
    if let Some(seconds) = err.retry_after
        && let Ok(v) = HeaderValue::from_str(&seconds.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(e) => return error_response(&ApiError::bad_request(format!("reading the body: {e}"))),
    };
    let info = request_info::parse(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or_default(),
    );
    if let Some(user) = rbac::User::impersonated(&parts.headers) {
        let store = shared.store.lock().expect("store lock");
        if let Err(e) = rbac::authorize(&store, &user, &info) {
            return error_response(&e);
        }
    }
    let result = if info.is_resource() {
        resource_request(&shared, &info, &parts.headers, &body)
    } else {
        non_resource_request(&shared, &info, &parts.headers)
    };
    result.unwrap_or_else(|e| error_response(&e))
}

fn accepts(headers: &HeaderMap, what: &str) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(what))
}

fn non_resource_request(
    shared: &Shared,
    info: &RequestInfo,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    if info.verb != "get" {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let store = shared.store.lock().expect("store lock");
    let registry = &store.registry;
    let aggregated = accepts(headers, "as=APIGroupDiscoveryList");
    let segments: Vec<&str> = info.path.trim_matches('/').split('/').collect();
    let doc = match segments.as_slice() {
        ["version"] => discovery::version(),
        ["healthz" | "readyz" | "livez"] => return Ok((StatusCode::OK, "ok").into_response()),
        ["api"] | ["apis"] if aggregated => {
            let mut resp =
                json_response(200, &discovery::aggregated(registry, segments == ["api"]));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
            );
            return Ok(resp);
        }
        ["api"] => discovery::core_versions(&shared.address),
        ["apis"] => discovery::group_list(registry),
        ["apis", group] => discovery::group(registry, group).ok_or_else(ApiError::unknown_path)?,
        ["api", version] => {
            discovery::resource_list(registry, "", version).ok_or_else(ApiError::unknown_path)?
        }
        ["apis", group, version] => {
            discovery::resource_list(registry, group, version).ok_or_else(ApiError::unknown_path)?
        }
        _ => return Err(ApiError::unknown_path()),
    };
    Ok(json_response(200, &doc))
}

fn write_options(info: &RequestInfo, headers: &HeaderMap, rt: &ResourceType) -> WriteOptions {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown");
    WriteOptions {
        manager: info
            .param("fieldManager")
            .unwrap_or_else(|| user_agent.to_string()),
        api_version: rt.api_version(&info.version),
        subresource: info.subresource.clone(),
        dry_run: info.param("dryRun").as_deref() == Some("All"),
        force: info.param("force").as_deref() == Some("true"),
        field_validation: match info.param("fieldValidation").as_deref() {
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            _ => FieldValidation::Warn,
        },
    }
}

/// Adds the write's warnings as `Warning: 299 - "..."` headers, as the API server does.
fn with_warnings(mut resp: Response, store: &mut Store) -> Response {
    for w in store.warnings.drain(..) {
        let text = format!(
            "299 - {}",
            serde_json::to_string(&w).expect("a JSON string")
        );
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// What a DELETE without a propagation policy of a batch/v1 Job warns about: its
/// default is Orphan, for backward compatibility, so its Pods stay.
const JOB_ORPHAN_WARNING: &str = "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning";

fn delete_options(
    info: &RequestInfo,
    rt: &ResourceType,
    body: &[u8],
    warnings: &mut Vec<String>,
) -> ApiResult<DeleteOptions> {
    let opts: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("decoding DeleteOptions: {e}")))?
    };
    let policy = opts["propagationPolicy"]
        .as_str()
        .map(str::to_string)
        .or_else(|| info.param("propagationPolicy"));
    let batch_v1_job = rt.group == "batch" && rt.plural == "jobs" && info.version == "v1";
    let propagation = match policy.as_deref() {
        None if batch_v1_job => {
            warnings.push(JOB_ORPHAN_WARNING.into());
            Propagation::Orphan
        }
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unsupported propagationPolicy {other:?}"
            )));
        }
    };
    let dry_run = opts["dryRun"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "All"))
        || info.param("dryRun").as_deref() == Some("All");
    Ok(DeleteOptions {
        propagation,
        uid: opts["preconditions"]["uid"].as_str().map(str::to_string),
        resource_version: opts["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
        dry_run,
    })
}

fn selectors(info: &RequestInfo, rt: &ResourceType) -> ApiResult<Selectors> {
    Ok(Selectors {
        labels: LabelSelector::parse(&info.param("labelSelector").unwrap_or_default())?,
        fields: FieldSelector::parse(&info.param("fieldSelector").unwrap_or_default(), rt)?,
    })
}

fn resource_request(
    shared: &Shared,
    info: &RequestInfo,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Response> {
    let mut store = shared.store.lock().expect("store lock");
    store.warnings.clear();
    let rt = store
        .registry
        .lookup(&info.group, &info.version, &info.resource)
        .cloned()
        .ok_or_else(ApiError::unknown_path)?;
    let ns = info.namespace.clone().unwrap_or_default();
    let collection_verb = matches!(info.verb.as_str(), "list" | "watch");
    if (rt.namespaced && info.namespace.is_none() && !collection_verb)
        || (!rt.namespaced && info.namespace.is_some())
    {
        return Err(ApiError::unknown_path());
    }
    match info.subresource.as_deref() {
        None => {}
        Some("status") if rt.status_subresource => {}
        Some(_) => return Err(ApiError::unknown_path()),
    }
    let metadata_only = accepts(headers, "as=PartialObjectMetadata");
    let show = |obj: &Value| present(&rt, &info.version, obj, metadata_only);
    let name = info.name.clone().unwrap_or_default();
    let parse_body = || -> ApiResult<Value> {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("decoding the body: {e}")))
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let write = || write_options(info, headers, &rt);
    let namespace_filter = info.namespace.as_deref();
    match info.verb.as_str() {
        "get" => Ok(json_response(200, &show(&store.get(&rt, &ns, &name)?))),
        "list" => {
            let sel = selectors(info, &rt)?;
            let limit = info.param("limit").and_then(|l| l.parse().ok());
            let cont = info.param("continue");
            let (items, rv, next) =
                store.list(&rt, namespace_filter, &sel, limit, cont.as_deref())?;
            let items: Vec<Value> = items.iter().map(show).collect();
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if let Some(next) = next {
                meta["continue"] = json!(next);
            }
            let (kind, api_version) = if metadata_only {
                (
                    "PartialObjectMetadataList".to_string(),
                    "meta.k8s.io/v1".to_string(),
                )
            } else {
                (format!("{}List", rt.kind), rt.api_version(&info.version))
            };
            Ok(json_response(
                200,
                &json!({"kind": kind, "apiVersion": api_version, "metadata": meta, "items": items}),
            ))
        }
        "watch" => {
            let rv = match info.param("resourceVersion").filter(|s| !s.is_empty()) {
                None => None,
                Some(s) => Some(s.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version {s:?}"))
                })?),
            };
            let timeout = info
                .param("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(Duration::from_secs(1800));
            let req = WatchRequest {
                selectors: selectors(info, &rt)?,
                rt: rt.clone(),
                version: info.version.clone(),
                namespace: info.namespace.clone(),
                resource_version: rv,
                send_initial_events: info.param("sendInitialEvents").as_deref() == Some("true"),
                bookmarks: info.param("allowWatchBookmarks").as_deref() == Some("true"),
                timeout,
                metadata_only,
            };
            let ctx = WatchContext {
                store: shared.store.clone(),
                changes: store.history.subscribe(),
                closes: shared.closes.subscribe(),
                bookmark_interval: shared.options.bookmark_interval,
            };
            drop(store);
            let mut resp = Response::new(Body::from_stream(watching::stream(req, ctx)));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(resp)
        }
        "create" => {
            let created = store.create(&rt, &ns, parse_body()?, &write())?;
            Ok(with_warnings(
                json_response(201, &show(&created)),
                &mut store,
            ))
        }
        "update" => {
            let updated = store.update(&rt, &ns, &name, parse_body()?, &write())?;
            Ok(with_warnings(
                json_response(200, &show(&updated)),
                &mut store,
            ))
        }
        "patch" => {
            let patched = store.patch(&rt, &ns, &name, &content_type, body, &write())?;
            Ok(with_warnings(
                json_response(200, &show(&patched)),
                &mut store,
            ))
        }
        "delete" => {
            let opts = delete_options(info, &rt, body, &mut store.warnings)?;
            let deleted = store.delete(&rt, &ns, &name, &opts)?;
            if deleted.gone && !rt.delete_returns_object() {
                let uid = deleted.object["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default();
                let resp = json_response(200, &status::success(&rt.resource(), &name, uid));
                return Ok(with_warnings(resp, &mut store));
            }
            Ok(with_warnings(
                json_response(200, &show(&deleted.object)),
                &mut store,
            ))
        }
        "deletecollection" => {
            let opts = delete_options(info, &rt, body, &mut store.warnings)?;
            let sel = selectors(info, &rt)?;
            let victims = store.select(&rt, namespace_filter, &sel);
            let mut items = vec![];
            for v in victims {
                let vname = v["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let vns = v["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                items.push(show(&store.delete(&rt, &vns, &vname, &opts)?.object));
            }
            let rv = store.rv.to_string();
            Ok(json_response(
                200,
                &json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(&info.version), "metadata": {"resourceVersion": rv}, "items": items}),
            ))
        }
        other => Err(ApiError::method_not_allowed(format!(
            "verb {other} is not supported"
        ))),
    }
}

//! A Hugging Face-compatible hub on 127.0.0.1 for tests: the API endpoints hf-hub calls, the
//! `resolve` route with the hub's headers and LFS redirects to a CDN route, HTTP Range, and
//! injected faults (dropped connections, 5xx bursts, stalls, slow links, wrong bytes, ignored
//! ranges). It counts every request so tests can bound them.

#![allow(dead_code)]
// each test binary uses a different part of it
// Rejections carry a whole response; they are the rare path of a test server.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use sha1::Digest as _;

/// One file of a served repository.
#[derive(Clone, Debug)]
pub struct ServedFile {
    pub path: String,
    pub data: Bytes,
    pub lfs: bool,
    /// An ETag to send instead of the real hash (a misbehaving or malicious mirror).
    pub served_etag: Option<String>,
    /// Say nothing of its size: no tree entry, no `X-Linked-Size` (a broken mirror).
    pub hide_size: bool,
}

impl ServedFile {
    pub fn new(path: &str, data: impl Into<Bytes>, lfs: bool) -> Self {
        ServedFile {
            path: path.to_string(),
            data: data.into(),
            lfs,
            served_etag: None,
            hide_size: false,
        }
    }

    /// Serves this ETag (as `X-Linked-Etag` for LFS files, `ETag` otherwise) instead of the hash.
    pub fn with_served_etag(mut self, etag: &str) -> Self {
        self.served_etag = Some(etag.to_string());
        self
    }

    pub fn sha256(&self) -> String {
        hex::encode(sha2::Sha256::digest(&self.data))
    }

    pub fn git_sha1(&self) -> String {
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {}\0", self.data.len()).as_bytes());
        h.update(&self.data);
        hex::encode(h.finalize())
    }

    /// What the hub names the blob: the SHA-256 for LFS files, the git SHA-1 otherwise.
    pub fn etag(&self) -> String {
        if self.lfs {
            self.sha256()
        } else {
            self.git_sha1()
        }
    }
}

/// Who may read a repository.
#[derive(Clone, Debug)]
pub enum Access {
    Public,
    /// Needs this token; without one the hub hides the repo (401 RepoNotFound).
    Private {
        token: String,
    },
    /// Needs this token, and the license accepted by its account.
    Gated {
        token: String,
        accepted: bool,
    },
}

/// A served model repository.
#[derive(Clone, Debug)]
pub struct ServedRepo {
    pub repo_id: String,
    pub commit: String,
    pub files: Vec<ServedFile>,
    pub access: Access,
    /// Listed by the API but missing from storage (resolve answers 404 EntryNotFound).
    pub phantom_files: Vec<String>,
}

impl ServedRepo {
    pub fn new(repo_id: &str, files: Vec<ServedFile>) -> Self {
        let mut h = sha1::Sha1::new();
        h.update(repo_id.as_bytes());
        for f in &files {
            h.update(f.path.as_bytes());
            h.update(&f.data);
        }
        ServedRepo {
            repo_id: repo_id.to_string(),
            commit: hex::encode(h.finalize()),
            files,
            access: Access::Public,
            phantom_files: Vec::new(),
        }
    }

    pub fn with_access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    pub fn file(&self, path: &str) -> &ServedFile {
        self.files
            .iter()
            .find(|f| f.path == path)
            .expect("file is served")
    }
}

/// A fault applied to one data request of a file.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Send this many body bytes, then cut the connection.
    DropAfter(u64),
    /// Answer with this status and no data.
    Status(u16),
    /// Send this many body bytes, then send nothing more (the connection stays open).
    StallAfter(u64),
    /// Send in chunks of this size with a pause between them (a slow but live link).
    Slow { chunk: usize, pause_ms: u64 },
    /// Send the right length with wrong bytes.
    Corrupt,
    /// Ignore the Range header: answer 200 with the whole file.
    IgnoreRange,
    /// Answer a ranged request with 416 Range Not Satisfiable.
    RangeNotSatisfiable,
    /// Answer a ranged request with a `Content-Range` starting this many bytes earlier.
    WrongContentRange(u64),
    /// Send this many bytes past the end of the file (and a matching Content-Length).
    OverLong(u64),
}

/// Which metadata request a [`MetaFault`] hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetaKind {
    /// `GET /api/models/<repo>[/revision/<rev>]`.
    Info,
    /// `GET /api/models/<repo>/tree/<rev>`.
    Tree,
    /// `HEAD` on a file's resolve URL.
    Head,
}

/// What one data request got.
#[derive(Clone, Debug)]
pub struct DataRequest {
    pub path: String,
    pub range_start: Option<u64>,
    pub status: u16,
    pub fault: Option<Fault>,
    pub bytes_sent: Arc<AtomicU64>,
}

#[derive(Default)]
struct Log {
    total_requests: u64,
    api_requests: u64,
    head_requests: u64,
    data: Vec<DataRequest>,
    refused_over_limit: u64,
    /// Requests (HEAD or GET) on the CDN route, and how many of them carried a token.
    cdn_requests: u64,
    cdn_with_token: u64,
}

struct Inner {
    repos: HashMap<String, ServedRepo>,
    faults: Mutex<HashMap<String, VecDeque<Fault>>>,
    persistent: Mutex<HashMap<String, Fault>>,
    /// Statuses to answer the next metadata requests of a kind with, in order.
    meta_faults: Mutex<HashMap<MetaKind, VecDeque<u16>>>,
    log: Mutex<Log>,
    request_limit: u64,
    addr: Mutex<Option<SocketAddr>>,
    /// Where LFS redirects point instead of `http://<addr>` (e.g. another host name).
    cdn_base: Mutex<Option<String>>,
}

/// The running server; stops when dropped.
pub struct TestHub {
    inner: Arc<Inner>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestHub {
    /// Serves `repos` on 127.0.0.1 (a free port) from a thread of its own.
    pub fn start(repos: Vec<ServedRepo>) -> TestHub {
        Self::start_on(repos, "127.0.0.1:0")
    }

    /// Serves on a given loopback address (to restart a hub on the same port).
    pub fn start_on(repos: Vec<ServedRepo>, bind: &str) -> TestHub {
        let inner = Arc::new(Inner {
            repos: repos.into_iter().map(|r| (r.repo_id.clone(), r)).collect(),
            faults: Mutex::new(HashMap::new()),
            meta_faults: Mutex::new(HashMap::new()),
            persistent: Mutex::new(HashMap::new()),
            log: Mutex::new(Log::default()),
            request_limit: 5000,
            addr: Mutex::new(None),
            cdn_base: Mutex::new(None),
        });
        let std_listener = std::net::TcpListener::bind(bind).expect("bind loopback");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local addr");
        assert!(addr.ip().is_loopback());
        *inner.addr.lock().unwrap() = Some(addr);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = inner.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                let app = router(state);
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = rx => {}
                }
            });
            rt.shutdown_background();
        });
        TestHub {
            inner,
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// The base URL to use as `HF_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues faults for the next data requests of a file, in order.
    pub fn push_faults(&self, path: &str, faults: impl IntoIterator<Item = Fault>) {
        let mut f = self.inner.faults.lock().unwrap();
        f.entry(path.to_string()).or_default().extend(faults);
    }

    /// Queues error statuses for the next metadata requests of a kind, in order.
    pub fn push_meta_faults(&self, kind: MetaKind, statuses: impl IntoIterator<Item = u16>) {
        let mut f = self.inner.meta_faults.lock().unwrap();
        f.entry(kind).or_default().extend(statuses);
    }

    /// Metadata faults still queued.
    pub fn pending_meta_faults(&self) -> usize {
        self.inner
            .meta_faults
            .lock()
            .unwrap()
            .values()
            .map(VecDeque::len)
            .sum()
    }

    /// Applies a fault to every data request of a file until cleared.
    pub fn set_persistent_fault(&self, path: &str, fault: Option<Fault>) {
        let mut p = self.inner.persistent.lock().unwrap();
        match fault {
            Some(f) => p.insert(path.to_string(), f),
            None => p.remove(path),
        };
    }

    /// Makes LFS redirects point at `base` + `/cdn/...` (`None`: this server's own address), to
    /// send clients to another host, e.g. `http://localhost:<port>` or `//localhost:<port>`.
    pub fn set_cdn_base(&self, base: Option<String>) {
        *self.inner.cdn_base.lock().unwrap() = base;
    }

    /// Requests on the CDN route so far, and how many of them carried an `Authorization` header.
    pub fn cdn_requests(&self) -> (u64, u64) {
        let log = self.inner.log.lock().unwrap();
        (log.cdn_requests, log.cdn_with_token)
    }

    /// Data requests so far (GETs of file content), in order.
    pub fn data_requests(&self) -> Vec<DataRequest> {
        self.inner.log.lock().unwrap().data.clone()
    }

    /// Data requests of one file.
    pub fn data_requests_for(&self, path: &str) -> Vec<DataRequest> {
        self.data_requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Body bytes sent for one file (or all files).
    pub fn bytes_sent(&self, path: Option<&str>) -> u64 {
        self.data_requests()
            .iter()
            .filter(|r| path.is_none_or(|p| r.path == p))
            .map(|r| r.bytes_sent.load(Ordering::SeqCst))
            .sum()
    }

    /// Every request so far.
    pub fn total_requests(&self) -> u64 {
        self.inner.log.lock().unwrap().total_requests
    }

    /// Requests refused because the test exceeded the server's request limit.
    pub fn refused_over_limit(&self) -> u64 {
        self.inner.log.lock().unwrap().refused_over_limit
    }

    /// Faults still queued (not yet consumed).
    pub fn pending_faults(&self) -> usize {
        self.inner
            .faults
            .lock()
            .unwrap()
            .values()
            .map(|q| q.len())
            .sum()
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type AppState = Arc<Inner>;

fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/models", get(api_search))
        .route("/api/models/{org}/{name}", get(api_info))
        .route("/api/models/{org}/{name}/revision/{rev}", get(api_info_rev))
        .route("/api/models/{org}/{name}/tree/{rev}", get(api_tree))
        .route("/{org}/{name}/resolve/{rev}/{*file}", get(resolve))
        .route("/cdn/{org}/{name}/{sha}/{*file}", get(cdn))
        .with_state(state)
}

fn count(state: &Inner, kind: &str) -> bool {
    let mut log = state.log.lock().unwrap();
    log.total_requests += 1;
    match kind {
        "api" => log.api_requests += 1,
        "head" => log.head_requests += 1,
        _ => {}
    }
    if log.total_requests > state.request_limit {
        log.refused_over_limit += 1;
        return false;
    }
    true
}

/// The next queued metadata fault of a kind, as an error response.
fn meta_fault(state: &Inner, kind: MetaKind) -> Option<Response> {
    let code = state
        .meta_faults
        .lock()
        .unwrap()
        .get_mut(&kind)?
        .pop_front()?;
    Some(error(
        StatusCode::from_u16(code).unwrap(),
        None,
        "injected metadata failure",
    ))
}

fn error(status: StatusCode, code: Option<&str>, message: &str) -> Response {
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-request-id", "test");
    if let Some(c) = code {
        b = b.header("x-error-code", c);
    }
    b = b.header("x-error-message", message);
    b.body(Body::from(
        serde_json::json!({ "error": message }).to_string(),
    ))
    .unwrap()
}

fn over_limit() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        "test server request limit reached",
    )
}

/// Checks access to a repository the way the hub does.
fn authorize<'a>(
    state: &'a Inner,
    repo_id: &str,
    headers: &HeaderMap,
) -> Result<&'a ServedRepo, Response> {
    let Some(repo) = state.repos.get(repo_id) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            Some("RepoNotFound"),
            "Repository not found",
        ));
    };
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    match &repo.access {
        Access::Public => Ok(repo),
        Access::Private { token } => match sent {
            None => Err(error(StatusCode::UNAUTHORIZED, Some("RepoNotFound"), "Repository not found")),
            Some(t) if &t == token => Ok(repo),
            Some(_) => Err(error(
                StatusCode::UNAUTHORIZED,
                None,
                "Invalid credentials in Authorization header",
            )),
        },
        Access::Gated { token, accepted } => match sent {
            None => Err(error(
                StatusCode::UNAUTHORIZED,
                Some("GatedRepo"),
                &format!("Access to model {repo_id} is restricted. You must have access to it and be authenticated to access it. Please log in."),
            )),
            Some(t) if &t != token => Err(error(
                StatusCode::UNAUTHORIZED,
                None,
                "Invalid credentials in Authorization header",
            )),
            Some(_) if !accepted => Err(error(
                StatusCode::FORBIDDEN,
                Some("GatedRepo"),
                &format!("Access to model {repo_id} is restricted and you are not in the authorized list. Visit https://huggingface.co/{repo_id} to ask for access."),
            )),
            Some(_) => Ok(repo),
        },
    }
}

fn check_rev(repo: &ServedRepo, rev: &str) -> Result<(), Response> {
    if rev == "main" || rev == repo.commit {
        Ok(())
    } else {
        Err(error(
            StatusCode::NOT_FOUND,
            Some("RevisionNotFound"),
            &format!("Invalid rev id: {rev}"),
        ))
    }
}

/// The hub's model search: public repositories whose id contains `search` (any case), of
/// `author` when given, at most `limit`, tagged by the weight files they hold.
async fn api_search(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !count(&state, "api") {
        return over_limit();
    }
    let needle = q
        .get("search")
        .map(|s| s.to_lowercase())
        .unwrap_or_default();
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
    let mut repos: Vec<&ServedRepo> = state
        .repos
        .values()
        .filter(|r| matches!(r.access, Access::Public))
        .filter(|r| r.repo_id.to_lowercase().contains(&needle))
        .filter(|r| {
            q.get("author")
                .is_none_or(|a| r.repo_id.split('/').next() == Some(a.as_str()))
        })
        .collect();
    repos.sort_by(|a, b| a.repo_id.cmp(&b.repo_id));
    let list: Vec<_> = repos
        .into_iter()
        .take(limit)
        .map(|r| {
            let mut tags = Vec::new();
            for (ext, tag) in [(".safetensors", "safetensors"), (".gguf", "gguf")] {
                if r.files.iter().any(|f| f.path.ends_with(ext)) {
                    tags.push(tag);
                }
            }
            if r.repo_id.starts_with("mlx-community/") {
                tags.push("mlx");
            }
            serde_json::json!({ "id": r.repo_id, "modelId": r.repo_id, "downloads": 0, "likes": 0, "tags": tags })
        })
        .collect();
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::Value::from(list).to_string()))
        .unwrap()
}

async fn api_info(
    State(state): State<AppState>,
    Path((org, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    info_response(&state, &format!("{org}/{name}"), "main", &headers)
}

async fn api_info_rev(
    State(state): State<AppState>,
    Path((org, name, rev)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    info_response(&state, &format!("{org}/{name}"), &rev, &headers)
}

fn info_response(state: &Inner, repo_id: &str, rev: &str, headers: &HeaderMap) -> Response {
    if !count(state, "api") {
        return over_limit();
    }
    if let Some(r) = meta_fault(state, MetaKind::Info) {
        return r;
    }
    let repo = match authorize(state, repo_id, headers) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Err(resp) = check_rev(repo, rev) {
        return resp;
    }
    let siblings: Vec<_> = repo
        .files
        .iter()
        .map(|f| f.path.as_str())
        .chain(repo.phantom_files.iter().map(String::as_str))
        .map(|p| serde_json::json!({ "rfilename": p }))
        .collect();
    let body = serde_json::json!({
        "_id": "0123456789abcdef01234567",
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "author": repo.repo_id.split('/').next(),
        "sha": repo.commit,
        "lastModified": "2025-01-01T00:00:00.000Z",
        "private": matches!(repo.access, Access::Private { .. }),
        "gated": if matches!(repo.access, Access::Gated { .. }) { serde_json::json!("manual") } else { serde_json::json!(false) },
        "disabled": false,
        "downloads": 0,
        "likes": 0,
        "tags": ["mlx"],
        "library_name": "mlx",
        "siblings": siblings,
    });
    json(body)
}

async fn api_tree(
    State(state): State<AppState>,
    Path((org, name, rev)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if !count(&state, "api") {
        return over_limit();
    }
    if let Some(r) = meta_fault(&state, MetaKind::Tree) {
        return r;
    }
    let repo_id = format!("{org}/{name}");
    let repo = match authorize(&state, &repo_id, &headers) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Err(resp) = check_rev(repo, &rev) {
        return resp;
    }
    let entries: Vec<_> = repo
        .files
        .iter()
        .filter(|f| !f.hide_size)
        .map(|f| {
            let mut e = serde_json::json!({
                "type": "file",
                "oid": f.git_sha1(),
                "size": f.data.len(),
                "path": f.path,
            });
            if f.lfs {
                e["lfs"] = serde_json::json!({ "oid": f.sha256(), "size": f.data.len(), "pointerSize": 134 });
            }
            e
        })
        .collect();
    json(serde_json::Value::Array(entries))
}

fn json(v: serde_json::Value) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}

async fn resolve(
    State(state): State<AppState>,
    method: Method,
    Path((org, name, rev, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let is_head = method == Method::HEAD;
    if !count(&state, if is_head { "head" } else { "resolve" }) {
        return over_limit();
    }
    if is_head {
        if let Some(r) = meta_fault(&state, MetaKind::Head) {
            return r;
        }
    }
    let repo_id = format!("{org}/{name}");
    let repo = match authorize(&state, &repo_id, &headers) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Err(resp) = check_rev(repo, &rev) {
        return resp;
    }
    let Some(f) = repo.files.iter().find(|f| f.path == file) else {
        return error(
            StatusCode::NOT_FOUND,
            Some("EntryNotFound"),
            &format!("{file} does not exist on \"{rev}\""),
        );
    };
    let served_etag = f.served_etag.clone();
    if f.lfs {
        let addr = state.addr.lock().unwrap().expect("address set");
        let base = state
            .cdn_base
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let location = format!("{base}/cdn/{repo_id}/{}/{}", f.sha256(), f.path);
        return Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, location)
            .header("x-repo-commit", &repo.commit)
            .header(header::ETAG, format!("\"{}\"", f.git_sha1()))
            .header(
                "x-linked-etag",
                format!("\"{}\"", served_etag.unwrap_or_else(|| f.sha256())),
            )
            .header(
                if f.hide_size {
                    "x-hidden-size"
                } else {
                    "x-linked-size"
                },
                f.data.len().to_string(),
            )
            .header(header::CONTENT_LENGTH, "0")
            .body(Body::empty())
            .unwrap();
    }
    let extra = [
        ("x-repo-commit", repo.commit.clone()),
        (
            "etag",
            format!("\"{}\"", served_etag.unwrap_or_else(|| f.git_sha1())),
        ),
    ];
    serve_data(&state, f, &headers, is_head, &extra)
}

async fn cdn(
    State(state): State<AppState>,
    method: Method,
    Path((org, name, sha, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let is_head = method == Method::HEAD;
    if !count(&state, if is_head { "head" } else { "cdn" }) {
        return over_limit();
    }
    {
        let mut log = state.log.lock().unwrap();
        log.cdn_requests += 1;
        if headers.contains_key(header::AUTHORIZATION) {
            log.cdn_with_token += 1;
        }
    }
    let repo_id = format!("{org}/{name}");
    let Some(f) = state
        .repos
        .get(&repo_id)
        .and_then(|r| r.files.iter().find(|f| f.path == file && f.sha256() == sha))
    else {
        return error(StatusCode::NOT_FOUND, None, "no such object");
    };
    let extra = [("etag", format!("\"{sha}\""))];
    serve_data(&state, f, &headers, is_head, &extra)
}

/// Serves file bytes with Range support and the next queued fault.
fn serve_data(
    state: &Inner,
    f: &ServedFile,
    headers: &HeaderMap,
    is_head: bool,
    extra: &[(&str, String)],
) -> Response {
    let total = f.data.len() as u64;
    let mut builder = Response::builder().header(header::ACCEPT_RANGES, "bytes");
    for (k, v) in extra {
        builder = builder.header(*k, HeaderValue::from_str(v).unwrap());
    }
    if is_head {
        return builder
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, total.to_string())
            .body(Body::empty())
            .unwrap();
    }
    let fault = {
        let queued = state
            .faults
            .lock()
            .unwrap()
            .get_mut(&f.path)
            .and_then(|q| q.pop_front());
        queued.or_else(|| state.persistent.lock().unwrap().get(&f.path).cloned())
    };
    let range_start = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes_sent = Arc::new(AtomicU64::new(0));
    let mut record = DataRequest {
        path: f.path.clone(),
        range_start,
        status: 200,
        fault: fault.clone(),
        bytes_sent: bytes_sent.clone(),
    };
    if let Some(Fault::Status(code)) = fault {
        record.status = code;
        state.log.lock().unwrap().data.push(record);
        let status = StatusCode::from_u16(code).unwrap();
        return error(status, None, "injected failure");
    }
    let start = match (range_start, &fault) {
        (Some(_), Some(Fault::IgnoreRange)) | (None, _) => 0,
        (Some(_), Some(Fault::RangeNotSatisfiable)) => {
            record.status = 416;
            state.log.lock().unwrap().data.push(record);
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{total}"))
                .body(Body::empty())
                .unwrap();
        }
        (Some(s), _) if s >= total && total > 0 => {
            record.status = 416;
            state.log.lock().unwrap().data.push(record);
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{total}"))
                .body(Body::empty())
                .unwrap();
        }
        (Some(s), _) => s,
    };
    let mut data = f.data.slice(start as usize..);
    if fault == Some(Fault::Corrupt) {
        let mut v = data.to_vec();
        for b in v.iter_mut().step_by(997) {
            *b ^= 0x5a;
        }
        data = Bytes::from(v);
    }
    if let Some(Fault::OverLong(extra)) = fault {
        let mut v = data.to_vec();
        v.extend(pseudo_random(extra, extra as usize));
        data = Bytes::from(v);
    }
    let partial = start > 0;
    record.status = if partial { 206 } else { 200 };
    state.log.lock().unwrap().data.push(record);
    builder = builder
        .status(if partial {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        })
        .header(header::CONTENT_LENGTH, data.len().to_string());
    if partial {
        let claimed = match fault {
            Some(Fault::WrongContentRange(back)) => start.saturating_sub(back.max(1)),
            _ => start,
        };
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {claimed}-{}/{total}", total - 1),
        );
    }
    builder
        .body(body_with_fault(data, fault, bytes_sent))
        .unwrap()
}

/// The response body as chunks, misbehaving as the fault says.
fn body_with_fault(data: Bytes, fault: Option<Fault>, sent: Arc<AtomicU64>) -> Body {
    let (chunk, pause, cut, stall) = match fault {
        Some(Fault::DropAfter(n)) => (16 * 1024, None, Some(n), None),
        Some(Fault::StallAfter(n)) => (16 * 1024, None, None, Some(n)),
        Some(Fault::Slow { chunk, pause_ms }) => (
            chunk.max(1),
            Some(Duration::from_millis(pause_ms)),
            None,
            None,
        ),
        _ => (64 * 1024, None, None, None),
    };
    let stream = futures::stream::unfold(0usize, move |pos| {
        let data = data.clone();
        let sent = sent.clone();
        async move {
            if pos >= data.len() {
                return None;
            }
            let limit = cut.or(stall).map(|n| n as usize).unwrap_or(usize::MAX);
            if pos >= limit {
                if stall.is_some() {
                    // Keep the connection open and silent.
                    futures::future::pending::<()>().await;
                }
                return Some((
                    Err(std::io::Error::other("injected connection drop")),
                    usize::MAX,
                ));
            }
            if let Some(p) = pause {
                tokio::time::sleep(p).await;
            }
            let end = (pos + chunk).min(data.len()).min(limit.max(pos + 1));
            sent.fetch_add((end - pos) as u64, Ordering::SeqCst);
            Some((Ok::<Bytes, std::io::Error>(data.slice(pos..end)), end))
        }
    });
    Body::from_stream(stream)
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no RNG crate.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A small MLX-style model repository: config with quantization, tokenizer, template,
/// two safetensors shards with an index, and files a pull must skip.
pub fn model_repo(repo_id: &str, shard_sizes: &[usize]) -> ServedRepo {
    let mut files = vec![
        ServedFile::new(
            "config.json",
            serde_json::to_vec_pretty(&serde_json::json!({
                "model_type": "llama",
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "intermediate_size": 128,
                "vocab_size": 256,
                "quantization": { "group_size": 64, "bits": 4 },
            }))
            .unwrap(),
            false,
        ),
        ServedFile::new("tokenizer.json", pseudo_random(1, 40_000), false),
        ServedFile::new(
            "tokenizer_config.json",
            br#"{"bos_token": "<s>"}"#.to_vec(),
            false,
        ),
        ServedFile::new(
            "generation_config.json",
            br#"{"temperature": 0.7}"#.to_vec(),
            false,
        ),
        ServedFile::new(
            "chat_template.jinja",
            b"{% for m in messages %}{{ m.content }}{% endfor %}".to_vec(),
            false,
        ),
        ServedFile::new("README.md", b"# test model\n".to_vec(), false),
        ServedFile::new(
            ".gitattributes",
            b"*.safetensors filter=lfs\n".to_vec(),
            false,
        ),
        ServedFile::new("pytorch_model.bin", pseudo_random(2, 300_000), true),
        ServedFile::new("original/consolidated.pth", pseudo_random(3, 200_000), true),
    ];
    let n = shard_sizes.len();
    let mut weight_map = serde_json::Map::new();
    for (i, &size) in shard_sizes.iter().enumerate() {
        let name = format!("model-{:05}-of-{:05}.safetensors", i + 1, n);
        files.push(ServedFile::new(
            &name,
            safetensors_bytes(10 + i as u64, size),
            true,
        ));
        weight_map.insert(
            format!("layers.{i}.weight"),
            serde_json::Value::String(name),
        );
    }
    files.push(ServedFile::new(
        "model.safetensors.index.json",
        serde_json::to_vec(&serde_json::json!({ "metadata": {}, "weight_map": weight_map }))
            .unwrap(),
        false,
    ));
    // A duplicate checkpoint the index does not name: must not be fetched.
    files.push(ServedFile::new(
        "consolidated.safetensors",
        safetensors_bytes(99, 50_000),
        true,
    ));
    ServedRepo::new(repo_id, files)
}

/// A valid safetensors file of about `size` bytes with mlx's format metadata.
pub fn safetensors_bytes(seed: u64, size: usize) -> Vec<u8> {
    let payload = size.saturating_sub(200).max(16);
    let header = serde_json::json!({
        "__metadata__": { "format": "mlx" },
        "w": { "dtype": "U8", "shape": [payload], "data_offsets": [0, payload] },
    })
    .to_string();
    let mut header = header.into_bytes();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + payload);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&pseudo_random(seed, payload));
    out
}

/// Paths a default pull of [`model_repo`] must fetch.
pub fn expected_files(repo: &ServedRepo) -> Vec<String> {
    let mut v: Vec<String> = repo
        .files
        .iter()
        .map(|f| f.path.clone())
        .filter(|p| {
            !matches!(
                p.as_str(),
                "README.md"
                    | ".gitattributes"
                    | "pytorch_model.bin"
                    | "original/consolidated.pth"
                    | "consolidated.safetensors"
            )
        })
        .collect();
    v.sort();
    v
}

/// A tiny DeepSeek-V3 repository: an architecture the engine does not run (catalog `[not_yet]`),
/// for tests that such a model is shown with the reason and refused before download.
pub fn unsupported_repo() -> ServedRepo {
    let config = serde_json::json!({
        "model_type": "deepseek_v3", "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 128,
        "moe_intermediate_size": 32, "n_routed_experts": 4, "num_experts_per_tok": 2,
        "kv_lora_rank": 16, "q_lora_rank": 24, "qk_rope_head_dim": 8, "qk_nope_head_dim": 8,
        "v_head_dim": 16, "vocab_size": 256, "max_position_embeddings": 4096,
    });
    ServedRepo::new(
        "acme/DeepSeek-V3-tiny",
        vec![
            ServedFile::new("config.json", serde_json::to_vec(&config).unwrap(), false),
            ServedFile::new("model.safetensors", vec![0u8; 4096], true),
        ],
    )
}

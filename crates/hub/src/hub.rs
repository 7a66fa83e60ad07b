//! The entry point: a [`Hub`] resolves a model on the hub (through hf-hub) into a
//! [`DownloadPlan`], checks it, and downloads it into the shared cache.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use hf_hub::repository::RepoTreeEntry;
use hf_hub::{HFClient, HFError};

use crate::cache_layout::{self, RepoCache};
use crate::config::{self, HubConfig};
use crate::control::PullControl;
use crate::error::{HubError, Result};
use crate::fetch::{self, FetchCtx};
use crate::filter;
use crate::model_ref::ModelRef;
use crate::plan::{self, DownloadPlan, PlannedFile};
use crate::preflight::{self, FitCheck, Preflight};
use crate::progress::Tracker;
use crate::remote::{self, ErrorContext, HeadFailure, Subject};
use crate::verify::Check;

/// Index of a sharded safetensors checkpoint.
const INDEX_FILE: &str = "model.safetensors.index.json";

/// A configured connection to a Hugging Face hub (or mirror) and the local cache.
#[derive(Clone)]
pub struct Hub {
    pub(crate) api: HFClient,
    pub(crate) http: reqwest::Client,
    head: reqwest::Client,
    pub(crate) endpoint: String,
    pub(crate) token: Option<String>,
    pub(crate) cache_dir: PathBuf,
    pub(crate) config: Arc<HubConfig>,
}

/// Says whether a token is set, never the token itself.
impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| config::REDACTED))
            .field("cache_dir", &self.cache_dir)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Resolves endpoint, token and cache folder (explicit values, then the environment) and
    /// builds the HTTP clients; an endpoint a token must not be sent to is refused.
    pub fn new(config: HubConfig) -> Result<Self> {
        let endpoint = config::resolve_endpoint(config.endpoint.as_deref())?;
        let token = config::resolve_token(config.token.as_deref());
        let cache_dir = config
            .cache_dir
            .clone()
            .unwrap_or_else(config::hub_cache_dir);
        let user_agent = format!("minibar/{}", env!("CARGO_PKG_VERSION"));
        let client_err = |e: reqwest::Error| HubError::Client(e.to_string());
        // API answers are small: a silent server for this long is down, not slow.
        let api_timeout = api_timeout(&config);
        let api_http = reqwest::Client::builder()
            .user_agent(&user_agent)
            .connect_timeout(config.connect_timeout)
            .read_timeout(api_timeout)
            .build()
            .map_err(client_err)?;
        let http = reqwest::Client::builder()
            .user_agent(&user_agent)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(client_err)?;
        let head = reqwest::Client::builder()
            .user_agent(&user_agent)
            .connect_timeout(config.connect_timeout)
            .read_timeout(api_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(client_err)?;
        let mut builder = HFClient::builder()
            .endpoint(endpoint.clone())
            .cache_dir(cache_dir.clone())
            .client(api_http)
            .retry_max_attempts(config.max_attempts.clamp(1, 5) as usize)
            .retry_base_delay(config.base_retry_delay);
        if let Some(t) = &token {
            builder = builder.token(t.clone());
        }
        let api = builder
            .build()
            .map_err(|e| HubError::Client(e.to_string()))?;
        Ok(Hub {
            api,
            http,
            head,
            endpoint,
            token,
            cache_dir,
            config: Arc::new(config),
        })
    }

    /// The hub base URL in use.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The hub cache folder in use.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// Whether a token will be sent.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Runs the disk and memory checks for a plan.
    pub fn preflight(&self, plan: &DownloadPlan, fit: Option<&FitCheck>) -> Preflight {
        preflight::check(plan, &self.cache_dir, fit)
    }

    /// Resolves the revision, lists the files the model needs with their sizes and checks,
    /// and notes what the cache already has; falls back to the cache when the hub is unreachable.
    pub async fn plan(&self, model: &ModelRef) -> Result<DownloadPlan> {
        if self.config.offline {
            return self.plan_from_cache(model, "HF_HUB_OFFLINE is set".to_string());
        }
        match self.plan_online(model).await {
            Err(Failure::Unreachable(reason)) => self.plan_from_cache(model, reason),
            Err(Failure::Hub(e)) => Err(e),
            Ok(plan) => Ok(plan),
        }
    }

    fn ctx<'a>(&'a self, repo_id: &'a str, subject: Subject<'a>) -> ErrorContext<'a> {
        ErrorContext {
            endpoint: &self.endpoint,
            repo_id,
            token_sent: self.token.is_some(),
            subject,
        }
    }

    async fn plan_online(&self, model: &ModelRef) -> Result<DownloadPlan, Failure> {
        let (org, name) = model
            .repo_id
            .split_once('/')
            .ok_or_else(|| HubError::InvalidModelId(model.repo_id.clone()))?;
        let repo = self.api.model(org, name);
        let info = repo
            .info()
            .revision(model.revision.clone())
            .send()
            .await
            .map_err(|e| self.hf_failure(e, &model.repo_id, Subject::Revision(&model.revision)))?;
        let api_url = format!("{}/api/models/{}", self.endpoint, model.repo_id);
        let commit = info.sha.clone().ok_or_else(|| HubError::Protocol {
            url: api_url.clone(),
            detail: "no commit sha in the repository info".into(),
        })?;
        // Both name folders and files in the cache: refuse anything that could leave it.
        cache_layout::check_commit(&commit, &api_url)?;
        let listed: Vec<String> = info
            .siblings
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.rfilename)
            .collect();
        for path in &listed {
            cache_layout::check_repo_path(path, &api_url)?;
        }

        // Sizes from the tree listing; an older mirror without it still works through HEAD.
        let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
        if let Ok(stream) = repo
            .list_tree()
            .revision(commit.clone())
            .recursive(true)
            .send()
        {
            if let Ok(entries) = stream.try_collect::<Vec<RepoTreeEntry>>().await {
                for e in entries {
                    if let RepoTreeEntry::File { path, size, .. } = e {
                        sizes.insert(path, size);
                    }
                }
            }
        }

        let filter = &self.config.filter;
        let (wanted, mut skipped): (Vec<String>, Vec<String>) =
            listed.iter().cloned().partition(|p| filter.wants(p));
        if !wanted.iter().any(|p| plan::is_weight(p)) {
            return Err(HubError::NoWeights {
                repo_id: model.repo_id.clone(),
                other_weights: listed
                    .iter()
                    .filter(|p| filter::is_other_weight(p))
                    .cloned()
                    .collect(),
            }
            .into());
        }

        let cache = RepoCache::new(&self.cache_dir, &model.repo_id);
        let commit_ref: &str = &commit;
        let mut metas: Vec<(String, remote::FileMeta)> = futures::stream::iter(wanted)
            .map(|path| async move {
                let url = remote::resolve_url(&self.endpoint, &model.repo_id, commit_ref, &path)?;
                let ctx = self.ctx(
                    &model.repo_id,
                    Subject::File {
                        revision: &model.revision,
                        path: &path,
                    },
                );
                // A busy hub (5xx, 429, 408) is asked again after a jittered backoff.
                let mut failures = 0u32;
                loop {
                    match remote::head_file(&self.head, url.clone(), self.token.as_deref(), &ctx)
                        .await
                    {
                        Ok(meta) => return Ok((path.clone(), meta)),
                        Err(HeadFailure::Hub(HubError::Server { status, .. }))
                            if (status >= 500 || status == 429 || status == 408)
                                && failures + 1 < self.config.max_attempts.max(1) =>
                        {
                            failures += 1;
                            tokio::time::sleep(crate::fetch::jittered_backoff(
                                &self.config,
                                failures,
                            ))
                            .await;
                        }
                        Err(HeadFailure::Hub(e)) => return Err(Failure::Hub(e)),
                        Err(HeadFailure::Transport(e)) => return Err(transport_failure(&e)),
                    }
                }
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;

        // A sharded checkpoint's index names its shards; other `*.safetensors` are duplicates
        // (like Mistral's `consolidated.safetensors`) and are left out.
        let mut weight_map = None;
        if let Some((_, index_meta)) = metas.iter().find(|(p, _)| p == INDEX_FILE) {
            let index = self
                .small_json(model, &commit, INDEX_FILE, index_meta, &sizes, &cache)
                .await?;
            let map: BTreeMap<String, String> = index
                .get("weight_map")
                .and_then(|m| m.as_object())
                .map(|m| {
                    m.iter()
                        .filter_map(|(t, v)| Some((t.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            let shards: HashSet<String> = map.values().cloned().collect();
            weight_map = Some(map);
            let (keep, dropped): (Vec<_>, Vec<_>) = metas.into_iter().partition(|(p, _)| {
                !p.ends_with(".safetensors") || shards.contains(p) || filter.explicitly_included(p)
            });
            metas = keep;
            skipped.extend(dropped.into_iter().map(|(p, _)| p));
        }
        let mut plan = self
            .finish_plan(model, commit, metas, &sizes, skipped, cache)
            .await?;
        plan.weight_map = weight_map;
        Ok(plan)
    }

    /// Builds the plan from the files' metadata and what the cache holds.
    async fn finish_plan(
        &self,
        model: &ModelRef,
        commit: String,
        metas: Vec<(String, remote::FileMeta)>,
        sizes: &BTreeMap<String, u64>,
        skipped: Vec<String>,
        cache: RepoCache,
    ) -> Result<DownloadPlan, Failure> {
        // Fetched first, so the plan below counts it as cached.
        let config = match metas.iter().find(|(p, _)| p == "config.json") {
            Some((_, meta)) => Some(
                self.small_json(model, &commit, "config.json", meta, sizes, &cache)
                    .await?,
            ),
            None => None,
        };
        // A file of unknown size would be taken for an empty one: refuse it with the reason.
        if let Some((path, _)) = metas
            .iter()
            .find(|(p, m)| m.size.or(sizes.get(p).copied()).is_none())
        {
            return Err(HubError::Protocol {
                url: remote::resolve_url(&self.endpoint, &model.repo_id, &commit, path)?
                    .to_string(),
                detail: "the hub gave no size for this file (no X-Linked-Size, Content-Length \
                         or tree entry)"
                    .into(),
            }
            .into());
        }
        let mut files: Vec<PlannedFile> = metas
            .into_iter()
            .map(|(path, meta)| {
                planned_file(&cache, path.clone(), &meta, sizes.get(&path).copied())
            })
            .collect();
        files.sort_by(|a, b| a.size.cmp(&b.size).then_with(|| a.path.cmp(&b.path)));

        Ok(DownloadPlan {
            repo_id: model.repo_id.clone(),
            revision: model.revision.clone(),
            snapshot: cache.snapshot(&commit),
            commit,
            files,
            skipped,
            config,
            offline: false,
            weight_map: None,
            layers: None,
        })
    }

    /// A small JSON file of the revision (config, index), downloaded into the cache through
    /// the same verified, retrying transfer as the weights, then read; not linked into the
    /// snapshot until the pull proper, so a declined pull leaves no half model behind.
    async fn small_json(
        &self,
        model: &ModelRef,
        commit: &str,
        path: &str,
        meta: &remote::FileMeta,
        sizes: &BTreeMap<String, u64>,
        cache: &RepoCache,
    ) -> Result<serde_json::Value, Failure> {
        let file = planned_file(cache, path.to_string(), meta, sizes.get(path).copied());
        if !file.complete {
            let ctx = FetchCtx {
                http: self.http.clone(),
                token: self.token.clone(),
                config: self.config.clone(),
                tracker: Tracker::new(None),
                control: PullControl::new(),
                cache: cache.clone(),
                repo_id: model.repo_id.clone(),
                revision: model.revision.clone(),
                commit: commit.to_string(),
                endpoint: self.endpoint.clone(),
                link: false,
            };
            fetch::fetch_file(&ctx, &file).await?;
        }
        let blob = cache.blob(&file.etag);
        read_json(&blob).ok_or_else(|| {
            HubError::Protocol {
                url: blob.display().to_string(),
                detail: format!("{path} is not JSON"),
            }
            .into()
        })
    }

    fn hf_failure(&self, e: HFError, repo_id: &str, subject: Subject<'_>) -> Failure {
        let ctx = self.ctx(repo_id, subject);
        match e {
            HFError::Request { source, .. } if remote::is_unreachable(&source) => {
                Failure::Unreachable(source.to_string())
            }
            HFError::AuthRequired { context }
            | HFError::Forbidden { context }
            | HFError::Http { context } => {
                let message = context
                    .server_message
                    .clone()
                    .unwrap_or_else(|| context.body.clone());
                Failure::Hub(remote::status_error(
                    &ctx,
                    context.status,
                    context.error_code.as_deref(),
                    &message,
                    &context.url,
                ))
            }
            HFError::RepoNotFound { context, .. }
            | HFError::RevisionNotFound { context, .. }
            | HFError::EntryNotFound { context, .. } => {
                let code = context.as_ref().and_then(|c| c.error_code.clone());
                let message = context
                    .as_ref()
                    .and_then(|c| c.server_message.clone())
                    .unwrap_or_default();
                let url = context.as_ref().map(|c| c.url.clone()).unwrap_or_default();
                // hf-hub names every 404 of a revision lookup "revision"; the error code tells
                // a missing repository apart.
                Failure::Hub(remote::status_error(
                    &ctx,
                    reqwest::StatusCode::NOT_FOUND,
                    code.as_deref(),
                    &message,
                    &url,
                ))
            }
            other => Failure::Hub(HubError::Server {
                status: 0,
                url: self.endpoint.clone(),
                message: other.to_string(),
            }),
        }
    }

    /// A plan from the cache alone; complete only if the snapshot has every file it names.
    fn plan_from_cache(&self, model: &ModelRef, reason: String) -> Result<DownloadPlan> {
        let cache = RepoCache::new(&self.cache_dir, &model.repo_id);
        let offline_err = |partial: Option<PathBuf>| HubError::Offline {
            endpoint: self.endpoint.clone(),
            repo_id: model.repo_id.clone(),
            reason: reason.clone(),
            partial,
        };
        let commit = if model.revision_is_commit() {
            Some(model.revision.clone())
        } else {
            cache.read_ref(&model.revision)
        };
        let Some(commit) = commit else {
            return Err(offline_err(None));
        };
        let snapshot = cache.snapshot(&commit);
        let files = crate::library::snapshot_files(&snapshot);
        if files.is_empty() {
            return Err(offline_err(None));
        }
        if !crate::library::snapshot_complete(&snapshot) {
            return Err(offline_err(Some(snapshot)));
        }
        let planned = files
            .into_iter()
            .map(|(path, size)| PlannedFile {
                etag: String::new(),
                check: Check::Size,
                cached_bytes: size,
                complete: true,
                size,
                path,
            })
            .collect();
        Ok(DownloadPlan {
            repo_id: model.repo_id.clone(),
            revision: model.revision.clone(),
            config: read_json(&snapshot.join("config.json")),
            snapshot,
            commit,
            files: planned,
            skipped: Vec::new(),
            offline: true,
            weight_map: None,
            layers: None,
        })
    }
}

/// How long a small API answer may take.
fn api_timeout(config: &HubConfig) -> std::time::Duration {
    config.stall_timeout.max(std::time::Duration::from_secs(30))
}

/// Why planning failed: the hub said no, or could not be reached (then the cache may do).
#[derive(Debug)]
enum Failure {
    Hub(HubError),
    Unreachable(String),
}

impl From<HubError> for Failure {
    fn from(e: HubError) -> Self {
        Failure::Hub(e)
    }
}

fn transport_failure(e: &reqwest::Error) -> Failure {
    if remote::is_unreachable(e) {
        Failure::Unreachable(e.to_string())
    } else {
        Failure::Hub(HubError::Server {
            status: 0,
            url: e.url().map(|u| u.to_string()).unwrap_or_default(),
            message: e.to_string(),
        })
    }
}

fn planned_file(
    cache: &RepoCache,
    path: String,
    meta: &remote::FileMeta,
    listed_size: Option<u64>,
) -> PlannedFile {
    // `finish_plan` refused files of unknown size before this.
    let size = meta.size.or(listed_size).unwrap_or_default();
    let etag = meta.etag.clone();
    let check = Check::from_etag(&meta.etag, meta.lfs);
    let blob_len = std::fs::metadata(cache.blob(&etag)).map(|m| m.len()).ok();
    let complete = blob_len == Some(size);
    let cached_bytes = if complete {
        size
    } else {
        std::fs::metadata(cache.incomplete(&etag))
            .map(|m| m.len().min(size))
            .unwrap_or(0)
    };
    PlannedFile {
        path,
        size,
        etag,
        check,
        cached_bytes,
        complete,
    }
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

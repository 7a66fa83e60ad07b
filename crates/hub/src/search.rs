//! Finding models on the hub by name: mlx-community's conversions first, then any repository
//! with weights an MLX engine loads (MLX or plain safetensors, GGUF). Repository ids come from
//! the server, so each is checked as a model id before it is returned; callers plan, judge
//! and pull a hit through the same [`Hub`] paths as any other model.

use serde::{Deserialize, Serialize};

use crate::error::{HubError, Result};
use crate::hub::Hub;
use crate::model_ref::ModelRef;

/// The organisation whose conversions are listed first.
pub const MLX_COMMUNITY: &str = "mlx-community";

/// One repository the hub found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// `org/name`, checked as a model id.
    pub repo_id: String,
    /// Downloads the hub reports (last 30 days).
    pub downloads: u64,
    /// Likes the hub reports.
    pub likes: u64,
    /// Weight formats its tags name: `mlx`, `safetensors`, `gguf`.
    pub formats: Vec<String>,
}

#[derive(Deserialize)]
struct ListedModel {
    /// The hub sends `modelId` too, with the same value.
    id: String,
    #[serde(default)]
    downloads: u64,
    #[serde(default)]
    likes: u64,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    library_name: Option<String>,
}

/// Formats an MLX engine can load, as the hub tags them.
const LOADABLE: [&str; 3] = ["mlx", "safetensors", "gguf"];

impl Hub {
    /// Up to `limit` repositories matching `query`, mlx-community's first (by downloads), then
    /// the rest of the hub; repositories without loadable weights are left out.
    pub async fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>> {
        let mut hits: Vec<SearchHit> = Vec::new();
        for author in [Some(MLX_COMMUNITY), None] {
            if hits.len() >= limit {
                break;
            }
            for m in self.list_models(query, author, limit).await? {
                if hits.len() >= limit {
                    break;
                }
                if hits.iter().any(|h| h.repo_id == m.id) {
                    continue;
                }
                if let Some(hit) = hit(m) {
                    hits.push(hit);
                }
            }
        }
        Ok(hits)
    }

    async fn list_models(
        &self,
        query: &str,
        author: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ListedModel>> {
        let base = format!("{}/api/models", self.endpoint);
        let mut url = url::Url::parse(&base).map_err(|e| HubError::Client(e.to_string()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("search", query)
                .append_pair("sort", "downloads")
                .append_pair("direction", "-1")
                .append_pair("limit", &limit.clamp(1, 100).to_string());
            if let Some(a) = author {
                q.append_pair("author", a);
            }
        }
        let shown = url.to_string();
        let mut req = self.http.get(url);
        // The endpoint was checked (https, or http on this machine) when the Hub was built.
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| HubError::Server {
            status: 0,
            url: shown.clone(),
            message: format!("cannot reach the hub: {e}"),
        })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(HubError::Server {
                status: status.as_u16(),
                url: shown,
                message: status.canonical_reason().unwrap_or("error").to_string(),
            });
        }
        resp.json::<Vec<ListedModel>>()
            .await
            .map_err(|e| HubError::Protocol {
                url: shown,
                detail: format!("not a model list: {e}"),
            })
    }
}

/// A listed model as a hit: refused when its id is not a model id, left out when it has no
/// weights an MLX engine loads.
fn hit(m: ListedModel) -> Option<SearchHit> {
    ModelRef::new(&m.id, None).ok()?;
    let mut formats: Vec<String> = LOADABLE
        .iter()
        .filter(|f| m.tags.iter().any(|t| t == *f) || m.library_name.as_deref() == Some(**f))
        .map(|f| f.to_string())
        .collect();
    if formats.is_empty() && m.id.starts_with(&format!("{MLX_COMMUNITY}/")) {
        formats.push("mlx".into());
    }
    (!formats.is_empty()).then_some(SearchHit {
        repo_id: m.id,
        downloads: m.downloads,
        likes: m.likes,
        formats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(id: &str, tags: &[&str]) -> ListedModel {
        ListedModel {
            id: id.into(),
            downloads: 0,
            likes: 0,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            library_name: None,
        }
    }

    #[test]
    fn hits_need_a_model_id_and_loadable_weights() {
        assert_eq!(
            hit(listed("org/model-GGUF", &["gguf", "llama"]))
                .unwrap()
                .formats,
            ["gguf"]
        );
        assert_eq!(
            hit(listed("mlx-community/Qwen3-4B-4bit", &[]))
                .unwrap()
                .formats,
            ["mlx"]
        );
        assert!(hit(listed("org/onnx-only", &["onnx"])).is_none());
        // A server-provided name never becomes a path unchecked.
        assert!(hit(listed("../../etc", &["gguf"])).is_none());
        assert!(hit(listed("org/../x", &["gguf"])).is_none());
    }
}

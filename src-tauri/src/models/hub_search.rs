//! Hub search for the Models view: each result judged before any download, from its
//! config.json and file sizes, by minibar-fit's `assess` (as the catalog is) and by the
//! engine's table of architectures; a result the engine does not run is refused for download.

use minibar_catalog::Catalog;
use minibar_hub::{Hub, HubConfig, ModelRef};

use super::catalog::{config_fit, support_of_type, Context};
use super::downloads::HubTarget;
use crate::types::{AppError, HubModel, ModelSupport};

/// Results shown for one query.
const LIMIT: usize = 20;

fn hub(target: &HubTarget) -> Result<Hub, AppError> {
    let mut config = HubConfig::from_env().with_token(target.token.clone());
    if let Some(e) = &target.endpoint {
        config = config.with_endpoint(e.clone());
    }
    if let Some(d) = &target.cache_dir {
        config = config.with_cache_dir(d.clone());
    }
    Hub::new(config).map_err(|e| AppError::invalid(e.to_string()))
}

/// The hub's models matching `query`, mlx-community's first, each with its fit and support.
pub async fn search(
    target: &HubTarget,
    catalog: &Catalog,
    ctx: &Context<'_>,
    query: &str,
) -> Result<Vec<HubModel>, AppError> {
    let query = query.trim();
    if query.is_empty() {
        return Ok(Vec::new());
    }
    let hub = hub(target)?;
    let hits = hub
        .search(query, LIMIT)
        .await
        .map_err(|e| AppError::io(e.to_string()))?;
    let mut out = Vec::with_capacity(hits.len());
    for hit in hits {
        let mut m = HubModel {
            repo_id: hit.repo_id.clone(),
            downloads: hit.downloads,
            formats: hit.formats,
            model_type: None,
            weights_bytes: None,
            support: ModelSupport {
                runs: false,
                reason: Some("its config.json could not be read".into()),
            },
            fit: None,
            note: None,
        };
        let plan = match ModelRef::new(&hit.repo_id, None) {
            Ok(model) => hub.plan(&model).await,
            Err(e) => Err(e),
        };
        match plan {
            Err(e) => m.note = Some(e.to_string()),
            Ok(plan) => {
                m.weights_bytes = Some(plan.weight_bytes());
                if let Some(config) = &plan.config {
                    if let Some(t) = config.get("model_type").and_then(|v| v.as_str()) {
                        m.support = support_of_type(catalog, t);
                        m.model_type = Some(t.to_string());
                    }
                    m.fit = config_fit(config, ctx);
                }
            }
        }
        out.push(m);
    }
    Ok(out)
}

/// Refuses, before anything is downloaded, a repository whose model the engine does not run.
pub async fn check_runnable(
    target: &HubTarget,
    catalog: &Catalog,
    repo_id: &str,
) -> Result<(), AppError> {
    let model = ModelRef::new(repo_id, None).map_err(|e| AppError::invalid(e.to_string()))?;
    let plan = hub(target)?
        .plan(&model)
        .await
        .map_err(|e| AppError::io(e.to_string()))?;
    let model_type = plan
        .config
        .as_ref()
        .and_then(|c| c.get("model_type"))
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            AppError::invalid(format!(
                "{repo_id} has no config.json naming its model_type"
            ))
        })?;
    match support_of_type(catalog, model_type).reason {
        Some(reason) => Err(AppError::invalid(format!(
            "{repo_id} is not supported yet: {reason}"
        ))),
        None => Ok(()),
    }
}

// minibar-hub's own loopback hub; its lints are that crate's to settle.
#[cfg(test)]
#[allow(clippy::incompatible_msrv)]
#[path = "../../../crates/hub/tests/support/hubserver.rs"]
mod hubserver;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::hubserver::{model_repo, unsupported_repo, TestHub};

    use super::*;
    use crate::types::Settings;

    #[test]
    fn results_are_judged_before_download_and_unsupported_ones_refused() {
        let server = TestHub::start(vec![
            unsupported_repo(),
            model_repo("mlx-community/Qwen3-tiny-4bit", &[4096]),
        ]);
        let cache = tempfile::tempdir().unwrap();
        let target = HubTarget {
            endpoint: Some(server.endpoint()),
            cache_dir: Some(cache.path().to_path_buf()),
            token: None,
        };
        let catalog = Catalog::builtin().unwrap();
        let settings = Settings::default();
        let memory = minibar_fit::snapshot();
        let downloads = HashMap::new();
        let ctx = Context {
            settings: &settings,
            memory: &memory,
            held_by_minibar: 0,
            installed: &[],
            downloads: &downloads,
            cluster: None,
        };
        let found =
            tauri::async_runtime::block_on(search(&target, &catalog, &ctx, "tiny")).unwrap();
        let ids: Vec<&str> = found.iter().map(|m| m.repo_id.as_str()).collect();
        assert_eq!(
            ids,
            ["mlx-community/Qwen3-tiny-4bit", "acme/DeepSeek-V3-tiny"]
        );
        assert!(found[0].support.runs);
        let fit = found[0].fit.as_ref().expect("the llama repo is sized");
        assert!(fit.needed_bytes > 0 && fit.usable_bytes > 0);
        assert_eq!(found[1].model_type.as_deref(), Some("deepseek_v3"));
        assert!(!found[1].support.runs);
        let e = tauri::async_runtime::block_on(check_runnable(
            &target,
            &catalog,
            "acme/DeepSeek-V3-tiny",
        ))
        .unwrap_err();
        assert!(e.message.contains("not supported yet"), "{}", e.message);
        tauri::async_runtime::block_on(check_runnable(
            &target,
            &catalog,
            "mlx-community/Qwen3-tiny-4bit",
        ))
        .unwrap();
        assert!(
            tauri::async_runtime::block_on(search(&target, &catalog, &ctx, "  "))
                .unwrap()
                .is_empty()
        );
    }
}

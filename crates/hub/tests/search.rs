//! Searching the loopback hub: mlx-community's conversions first, repositories without
//! loadable weights left out, private ones hidden, and a hit planned like any other model.

mod support;

use minibar_hub::ModelRef;
use support::hubserver::{model_repo, Access, ServedFile, ServedRepo, TestHub};

fn served() -> Vec<ServedRepo> {
    let mut private = model_repo("acme/qwen-secret", &[1000]);
    private.access = Access::Private {
        token: "hf_secret".into(),
    };
    vec![
        model_repo("mlx-community/Qwen3-0.6B-4bit", &[1000]),
        model_repo("acme/Qwen3-0.6B-base", &[1000]),
        ServedRepo::new(
            "acme/qwen3-onnx",
            vec![ServedFile::new("model.onnx", vec![0u8; 100], true)],
        ),
        model_repo("mlx-community/Llama-3.2-1B-4bit", &[1000]),
        private,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlx_community_first_then_any_loadable_repository() {
    let server = TestHub::start(served());
    let cache = tempfile::tempdir().unwrap();
    let hub = support::hub(&server.endpoint(), cache.path());
    let hits = hub.search("qwen", 10).await.unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.repo_id.as_str()).collect();
    assert_eq!(
        ids,
        ["mlx-community/Qwen3-0.6B-4bit", "acme/Qwen3-0.6B-base"],
        "mlx-community first; no ONNX-only or private repository"
    );
    assert_eq!(hits[0].formats, ["mlx", "safetensors"]);
    assert_eq!(hub.search("qwen", 1).await.unwrap().len(), 1);
    assert!(hub.search("no-such-model", 10).await.unwrap().is_empty());

    // A hit is planned like any model: its config.json and weight sizes, before any download.
    let plan = hub
        .plan(&ModelRef::new(&hits[0].repo_id, None).unwrap())
        .await
        .unwrap();
    assert_eq!(plan.config.as_ref().unwrap()["model_type"], "llama");
    assert!(plan.weight_bytes() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_hub_is_an_error_not_an_empty_list() {
    let cache = tempfile::tempdir().unwrap();
    let hub = support::hub("http://127.0.0.1:9", cache.path());
    let err = hub.search("qwen", 10).await.unwrap_err();
    assert!(err.to_string().contains("cannot reach the hub"), "{err}");
}

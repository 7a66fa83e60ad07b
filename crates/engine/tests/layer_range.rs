//! A pipeline rank loads only its own layers: with `LoadOptions::layers`, the other blocks'
//! weights are never read, the blocks it holds are exactly the whole model's, the embeddings
//! and output layer stay only where they are used, and the memory gate judges its share. One test in its own binary: the gate sets MLX's limits process-wide.

mod support;

use minibar_engine::{EngineError, LoadOptions, LoadedModel};
use minibar_fit::{Budget, LoadRequest};
use support::budget;

/// Bytes of each decoder block (the groups after the embeddings, norm and output layer).
fn block_bytes(model: &LoadedModel) -> Vec<usize> {
    model.model.array_groups()[1..]
        .iter()
        .map(|g| g.iter().map(|a| a.nbytes()).sum())
        .collect()
}

fn with_layers(layers: Option<std::ops::Range<usize>>, budget: Option<Budget>) -> LoadOptions {
    LoadOptions {
        layers,
        memory: LoadRequest {
            budget,
            ..LoadRequest::default()
        },
        ..LoadOptions::default()
    }
}

#[test]
fn each_rank_holds_its_share_of_the_blocks_and_is_gated_on_it() {
    let Some(path) = minibar_testkit::default_gguf() else {
        return;
    };
    let whole = minibar_engine::load(&path, &LoadOptions::default()).unwrap();
    let n = minibar_engine::layer_count(&path).unwrap();
    assert_eq!(whole.model.blocks.len(), n);
    let all = block_bytes(&whole);
    let total: usize = all.iter().sum();
    drop(whole);

    // Three ranks, as the cluster splits equal nodes: each holds a third of the block bytes.
    let ranges = minibar_fit::split_layers(n, &[1, 1, 1], 0).unwrap();
    let mut held = 0;
    for range in &ranges {
        let part = minibar_engine::load(&path, &with_layers(Some(range.clone()), None)).unwrap();
        assert_eq!(part.model.layers, *range);
        assert_eq!(part.model.blocks.len(), range.len());
        let bytes = block_bytes(&part);
        assert_eq!(
            bytes,
            all[range.clone()],
            "{range:?}: the same blocks as one process"
        );
        let share: usize = bytes.iter().sum();
        let third = total as f64 / 3.0;
        assert!(
            (share as f64 - third).abs() <= third * 0.15,
            "{range:?} holds {share} of {total} block bytes"
        );
        held += share;
        // Embeddings where they are used: to embed (the first rank) and, tied, to output
        // (the last); no rank in the middle holds them.
        let (first, last) = (range.start == 0, range.end == n);
        assert_eq!(
            part.model.embed.is_some(),
            first || (last && part.model.tied)
        );
        assert_eq!(part.model.lm_head.is_some(), last && !part.model.tied);
        if !first && !last {
            assert!(part
                .model
                .embed_tokens(&mlx_rs::Array::from_slice(&[1u32], &[1, 1]))
                .is_err());
        }
    }
    assert_eq!(held, total);

    // A budget the whole model exceeds but a third of it fits (three fifths of its file):
    // the whole is refused; a rank's share is admitted, judged as its part of what the whole
    // model needs on a budget scaled up alike.
    let small = std::fs::metadata(&path).unwrap().len() * 3 / 5;
    let refused = minibar_engine::load(&path, &with_layers(None, Some(budget(small))));
    assert!(
        matches!(refused, Err(EngineError::WontFit(_))),
        "the whole model: {:?}",
        refused.map(|m| m.admission)
    );
    let first = ranges[0].clone();
    let part = minibar_engine::load(
        &path,
        &with_layers(Some(first.clone()), Some(budget(small))),
    )
    .unwrap_or_else(|e| panic!("a third of the model: {e}"));
    let scaled = LoadRequest {
        budget: Some(budget(small * n as u64 / first.len() as u64)),
        ..LoadRequest::default()
    };
    let whole = minibar_fit::admit(&path, &scaled).unwrap().verdict.needed;
    let judged = part.admission.verdict.needed;
    assert_eq!(
        judged,
        (whole as u128 * first.len() as u128 / n as u128) as u64
    );
    assert!(judged < small, "{judged} of {small}");
}

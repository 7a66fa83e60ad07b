//! Whether a model fits split across several nodes, and which layers each node holds: the
//! pipeline's split rule, decided here once so `minibar cluster status`, a rank's load gate
//! and any other caller give the same answer.
//!
//! Invariant: the ranges cover `0..layers` in order, without gaps or overlap, and each rank
//! holds at least one layer; the same inputs give the same split on every node.

use std::ops::Range;

use serde::Serialize;

use crate::verdict::gb;

/// The verdict for a model split across nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterFit {
    /// How many nodes (ranks) it was judged across.
    pub nodes: usize,
    /// Each rank's layers, `[start, end)`; empty when it does not fit.
    pub ranges: Vec<Range<usize>>,
    /// Bytes of weights each rank would hold (its blocks' share).
    pub held: Vec<u64>,
    /// Whether every rank's share fits the memory it may use.
    pub fits: bool,
    /// One sentence a user can act on ("fits across 3 nodes: ...").
    pub reason: String,
}

/// Judges a model of `layers` decoder blocks and `weight_bytes` of weights split over nodes
/// that may use `memory` bytes each (one entry per rank), by [`split_layers`].
pub fn fits_across(layers: usize, weight_bytes: u64, memory: &[u64]) -> ClusterFit {
    let layer_bytes = weight_bytes / layers.max(1) as u64;
    let nodes = memory.len();
    match split_layers(layers, memory, layer_bytes) {
        Ok(ranges) => {
            let held: Vec<u64> = ranges
                .iter()
                .map(|r| r.len() as u64 * layer_bytes)
                .collect();
            let largest = held.iter().copied().max().unwrap_or(0);
            ClusterFit {
                nodes,
                reason: format!(
                    "fits across {nodes} node{}: the largest share is {} of {} of weights",
                    if nodes == 1 { "" } else { "s" },
                    gb(largest),
                    gb(weight_bytes)
                ),
                ranges,
                held,
                fits: true,
            }
        }
        Err(reason) => ClusterFit {
            nodes,
            ranges: Vec::new(),
            held: Vec::new(),
            fits: false,
            reason: format!("won't fit across {nodes} nodes: {reason}"),
        },
    }
}

/// Splits `layers` layers over `memory.len()` ranks in proportion to `memory` (bytes), each
/// rank at least one layer; evenly where no memory is known. `layer_bytes` (the weights of
/// one layer) checks that each share fits its node.
pub fn split_layers(
    layers: usize,
    memory: &[u64],
    layer_bytes: u64,
) -> Result<Vec<Range<usize>>, String> {
    let ranks = memory.len();
    if ranks == 0 {
        return Err("a cluster needs at least one rank".into());
    }
    if layers < ranks {
        return Err(format!(
            "the model has {layers} layers, fewer than the cluster's {ranks} ranks: use fewer ranks"
        ));
    }
    let known = memory.iter().all(|&m| m > 0);
    let weight: Vec<u128> = memory
        .iter()
        .map(|&m| if known { m as u128 } else { 1 })
        .collect();
    let total: u128 = weight.iter().sum();
    // Whole shares by proportion, the rest by largest remainder (ties to the lower rank), then
    // a layer for any rank left with none, taken from the rank holding the most.
    let mut counts: Vec<usize> = Vec::with_capacity(ranks);
    let mut remainders: Vec<(u128, usize)> = Vec::with_capacity(ranks);
    for (r, &w) in weight.iter().enumerate() {
        let exact = layers as u128 * w;
        counts.push((exact / total) as usize);
        remainders.push((exact % total, r));
    }
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let given: usize = counts.iter().sum();
    for &(_, r) in remainders.iter().take(layers - given) {
        counts[r] += 1;
    }
    while let Some(empty) = counts.iter().position(|&n| n == 0) {
        let most = (0..ranks)
            .max_by_key(|&r| (counts[r], ranks - r))
            .unwrap_or(0);
        counts[most] -= 1;
        counts[empty] += 1;
    }
    if known && layer_bytes > 0 {
        for (r, (&n, &m)) in counts.iter().zip(memory).enumerate() {
            let need = n as u64 * layer_bytes;
            if need > m {
                return Err(format!(
                    "rank {r} would hold {n} layers ({:.2} GB) but may use {:.2} GB: add a node or use a smaller quantization",
                    need as f64 / 1e9,
                    m as f64 / 1e9
                ));
            }
        }
    }
    let mut start = 0;
    Ok(counts
        .into_iter()
        .map(|n| {
            let r = start..start + n;
            start += n;
            r
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lens(r: &[Range<usize>]) -> Vec<usize> {
        r.iter().map(|r| r.len()).collect()
    }

    #[test]
    fn equal_nodes_split_evenly_and_cover_every_layer() {
        let r = split_layers(30, &[8, 8, 8], 0).unwrap();
        assert_eq!(lens(&r), [10, 10, 10]);
        let r = split_layers(31, &[8, 8, 8], 0).unwrap();
        assert_eq!(lens(&r), [11, 10, 10]);
        assert_eq!(r[0].start, 0);
        assert_eq!(r[2].end, 31);
        assert!(r.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn shares_follow_memory() {
        // A 64 GB Mac and a 16 GB one: four fifths of the layers go to the larger.
        let gb = 1u64 << 30;
        let r = split_layers(80, &[64 * gb, 16 * gb], gb / 2).unwrap();
        assert_eq!(lens(&r), [64, 16]);
        // Unknown memory: evenly.
        assert_eq!(lens(&split_layers(9, &[0, 5], 0).unwrap()), [5, 4]);
        // Even a tiny node holds a layer.
        assert_eq!(lens(&split_layers(10, &[1000, 1], 0).unwrap()), [9, 1]);
    }

    #[test]
    fn shares_that_do_not_fit_and_too_many_ranks_are_refused() {
        let e = split_layers(10, &[1000, 1000], 300).unwrap_err();
        assert!(e.contains("rank 0 would hold 5 layers"), "{e}");
        assert!(split_layers(2, &[1, 1, 1], 0).is_err());
    }

    #[test]
    fn a_model_too_big_for_one_node_fits_across_two() {
        const GB: u64 = 1_000_000_000;
        // 80 layers, 140 GB of weights (a 70B at 8 bits): not on one 96 GB Mac, yes on two.
        let one = fits_across(80, 140 * GB, &[96 * GB]);
        assert!(!one.fits);
        assert!(
            one.reason.contains("won't fit across 1 nodes"),
            "{}",
            one.reason
        );
        let two = fits_across(80, 140 * GB, &[96 * GB, 96 * GB]);
        assert!(two.fits, "{}", two.reason);
        assert_eq!(lens(&two.ranges), [40, 40]);
        assert_eq!(two.held, [70 * GB, 70 * GB]);
        assert!(
            two.reason.starts_with("fits across 2 nodes"),
            "{}",
            two.reason
        );
        // A lopsided pair: the larger node takes more, and the smaller one's share must fit.
        let lopsided = fits_across(80, 140 * GB, &[128 * GB, 32 * GB]);
        assert!(lopsided.fits, "{}", lopsided.reason);
        assert_eq!(lens(&lopsided.ranges), [64, 16]);
        assert!(!fits_across(80, 140 * GB, &[64 * GB, 32 * GB]).fits);
    }
}

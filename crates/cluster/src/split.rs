//! Which layers each rank holds: contiguous ranges, in proportion to the memory each node may
//! use (minibar-fit's budget for that machine), so that a node's share fits it.
//!
//! Invariant: the ranges cover `0..layers` in order, without gaps or overlap, and each rank
//! holds at least one layer; every rank computes the same split from the same inputs.

use std::{net::IpAddr, ops::Range};

/// Each rank's memory share: ranks on one machine share that machine's budget equally.
pub fn shares(budget: &[u64], machine: &[Option<IpAddr>]) -> Vec<u64> {
    budget
        .iter()
        .enumerate()
        .map(|(r, &b)| {
            let here = machine.get(r).copied().flatten();
            let same = match here {
                Some(ip) => machine.iter().filter(|m| **m == Some(ip)).count(),
                None => 1,
            };
            b / same.max(1) as u64
        })
        .collect()
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
    fn ranks_on_one_machine_share_it() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            shares(&[90, 90, 40], &[Some(lo), Some(lo), Some(other)]),
            [45, 45, 40]
        );
    }
}

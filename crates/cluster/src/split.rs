//! Which layers each rank holds: contiguous ranges, in proportion to the memory each node may
//! use (minibar-fit's budget for that machine), so that a node's share fits it.
//!
//! Invariant (minibar-fit's split rule): the ranges cover `0..layers` in order, without gaps
//! or overlap, and each rank holds at least one layer; every rank computes the same split.

use std::net::IpAddr;

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

/// The split rule itself is minibar-fit's, so the fit verdict's "fits across N nodes" and the
/// cluster's plan are one decision.
pub use minibar_fit::split_layers;

#[cfg(test)]
mod tests {
    use super::*;

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

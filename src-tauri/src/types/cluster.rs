//! The cluster (`minibar cluster up`) as Settings shows it.

use serde::{Deserialize, Serialize};
use specta::Type;

/// One node of a running cluster, as the ranks agreed at start (minibar-fit's split).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNode {
    /// Its rank (0 takes the jobs).
    pub rank: u32,
    /// Its address ("this machine" for ranks on loopback).
    pub address: String,
    /// Bytes it may use for the model.
    pub memory_bytes: u64,
    /// Bytes of the model's weights it holds.
    pub held_bytes: u64,
    /// Its first layer.
    pub first_layer: u32,
    /// One past its last layer.
    pub end_layer: u32,
}

/// Whether a cluster is up on this machine's control socket, and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// Its control socket answers.
    pub up: bool,
    /// The control socket asked.
    pub socket: String,
    /// The model every node holds (its file or folder name); null when none is up.
    pub model: Option<String>,
    /// Its nodes, rank 0 first; empty when none is up.
    pub nodes: Vec<ClusterNode>,
    /// minibar-fit's verdict on the split, or, when none is up, how to start one (one line).
    pub note: String,
}

/// A model that won't fit this Mac but fits across the running cluster (minibar-fit's
/// `fits_across`, over the nodes' memory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct AcrossNodes {
    /// How many nodes share it.
    pub nodes: u32,
    /// minibar-fit's sentence ("fits across 2 nodes: ...").
    pub reason: String,
}

/** The cluster in Settings: the nodes of `cluster_status`, formatted (Rust decided the split). */
import type { ClusterStatus } from "./bindings";

/** One node as the Settings table shows it. */
export type ClusterRow = { rank: number; address: string; memory: string; layers: string };

/** Each node's address, memory and layer range, rank 0 first, as Rust sent them. */
export function clusterRows(status: ClusterStatus): ClusterRow[] {
  return status.nodes.map((n) => ({
    rank: n.rank,
    address: n.address,
    memory: `${(n.memoryBytes / 1e9).toFixed(1)} GB`,
    // Half-open in Rust; people count layers inclusively.
    layers: n.endLayer > n.firstLayer ? `${n.firstLayer}–${n.endLayer - 1}` : "none",
  }));
}

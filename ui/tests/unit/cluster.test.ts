import { describe, expect, test } from "vitest";
import { render } from "svelte/server";
import ClusterPanel from "../../src/components/ClusterPanel.svelte";
import type { ClusterStatus, FitReport } from "../../src/lib/bindings";
import { clusterRows } from "../../src/lib/cluster";
import { badgeFor } from "../../src/lib/fit";

const GB = 1e9;

/** What `cluster_status` answers for `minibar cluster up --ranks 2` on loopback. */
const UP: ClusterStatus = {
  up: true,
  socket: "/run/user/501/minibar/cluster.sock",
  model: "SmolLM2-135M-Instruct.Q4_1.gguf",
  nodes: [
    { rank: 0, address: "this machine", memoryBytes: 8 * GB, heldBytes: 0.05 * GB, firstLayer: 0, endLayer: 15 },
    { rank: 1, address: "192.168.1.7", memoryBytes: 16 * GB, heldBytes: 0.05 * GB, firstLayer: 15, endLayer: 30 },
  ],
  note: "fits across 2 nodes: the largest share is 0.05 GB of 0.1 GB of weights",
};

describe("Settings' cluster section", () => {
  test("shows the nodes, their memory, the model and each node's layers as Rust sent them", () => {
    const { body } = render(ClusterPanel, { props: { status: UP } });
    expect(body).toContain('data-testid="cluster-up"');
    expect(body).toContain("SmolLM2-135M-Instruct.Q4_1.gguf");
    expect(body).toContain("192.168.1.7");
    expect(body).toContain("16.0 GB");
    expect(body).toContain("0–14");
    expect(body).toContain("15–29");
    expect(body).toContain("fits across 2 nodes");
    expect(body).not.toContain('data-testid="cluster-none"');
    expect(clusterRows(UP).map((r) => r.layers)).toEqual(["0–14", "15–29"]);
  });

  test("when none is up, says how to start one, in one line", () => {
    const none: ClusterStatus = { up: false, socket: UP.socket, model: null, nodes: [], note: "No cluster is up: start one with `minibar cluster up -m MODEL --ranks 2`." };
    const { body } = render(ClusterPanel, { props: { status: none } });
    expect(body).toContain('data-testid="cluster-none"');
    expect(body).toContain("minibar cluster up");
    expect(body).not.toContain("<table");
  });

  test("a model that fits only across the cluster is badged with Rust's verdict", () => {
    const fit = { verdict: "wont_fit", reason: "needs 140 GB", across: { nodes: 2, reason: "fits across 2 nodes: ..." } } as FitReport;
    expect(badgeFor(fit)).toMatchObject({ label: "Fits across 2 nodes", tone: "ok" });
    expect(badgeFor(fit).title).toContain("needs 140 GB");
  });
});

"""Minibar's server against mlx_lm.server on the same weights, in one run (issue #15).

Both serve SmolLM2-135M-Instruct converted to one f32 folder (`compare_mlx_lm.prepare_f32`),
both with Debian's OpenBLAS (mlx_lm.server through LD_PRELOAD, as `compare_mlx_lm.py` does),
and both are driven by the same client, the `serve` bench of minibar-serve: aggregate output
tokens/s and p50/p95 time to first token at 1-32 concurrent streaming clients, each sending
a ~128-token prompt to /v1/completions and asking for 128 tokens at temperature 0.
mlx_lm.server runs with its defaults (decode concurrency 32, prompt concurrency 8). With
--rounds N the two servers take turns N times and each figure is the median of its N values
(this 2-core machine's speed drifts by tens of percent between minutes).

Prints both tables, the ratios, and whether the issue's two targets hold:
  - Minibar's throughput at least mlx_lm.server's at every concurrency;
  - Minibar's throughput at 32 clients at least 3.5x its throughput at one.

usage: python benches/serve_vs_mlx_lm.py --minibar target/release/minibar
       --bench "cargo bench -q -p minibar-serve --bench serve --" [--levels 1,2,4,8,16,32]
       [--rounds 3]
Run it with the reference Python ($MINIBAR_REFERENCE_PYTHON).
"""

import argparse
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_mlx_lm import OPENBLAS, default_gguf, prepare_f32  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, seconds=300):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"mlx_lm.server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"mlx_lm.server did not answer on {url} within {seconds} s")


def built(cmd):
    """A `cargo bench ... --` command line as the executable it builds, built once: a source
    edit during a long run must not rebuild the bench between rounds."""
    if Path(cmd[0]).name != "cargo":
        return cmd
    cut = cmd.index("--") if "--" in cmd else len(cmd)
    out = subprocess.run(cmd[:cut] + ["--no-run", "--message-format=json"],
                         capture_output=True, text=True, check=True).stdout
    exes = [m["executable"] for m in map(json.loads, out.splitlines())
            if m.get("reason") == "compiler-artifact" and m.get("executable")
            and m["target"]["kind"] == ["bench"]]
    if len(exes) != 1:
        sys.exit(f"{' '.join(cmd[:cut])} built {len(exes)} benches, not one")
    return exes + cmd[cut + 1:]


def bench(cmd, args):
    """Runs the serve bench; returns its rows (the table is echoed as it comes)."""
    proc = subprocess.run(cmd + args + ["--json"], capture_output=True, text=True)
    sys.stdout.write(proc.stdout.rsplit("\n{", 1)[0] + "\n")
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd + args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["rows"]


def run_mlx_lm(cmd, folder, common):
    """One pass of the bench against a fresh mlx_lm.server on `folder`."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, LD_PRELOAD=OPENBLAS) if Path(OPENBLAS).exists() else dict(os.environ)
    server = subprocess.Popen(
        [sys.executable, "-m", "mlx_lm.server", "--model", str(folder), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(url, server)
        print("mlx_lm.server (OpenBLAS):")
        return bench(cmd, ["--url", url, "--model", "default_model"] + common)
    finally:
        server.terminate()
        server.wait()


def median_rows(runs):
    """Each level's figures as the median over the rounds."""
    keys = ("tok_s", "ttft_p50_s", "ttft_p95_s")
    return [
        dict(rows[0], **{k: statistics.median(r[k] for r in rows) for k in keys})
        for rows in zip(*runs)
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minibar", required=True)
    ap.add_argument("--bench", required=True, help="the serve bench's command line, up to its --")
    ap.add_argument("--gguf")
    ap.add_argument("--folder", default=str(Path.home() / ".cache/minibar/bench/SmolLM2-135M-Instruct-f32"))
    ap.add_argument("--levels", default="1,2,4,8,16,32")
    ap.add_argument("--gen", default="128")
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()

    gguf = Path(a.gguf) if a.gguf else default_gguf()
    folder = Path(a.folder)
    prepare_f32(a.minibar, gguf, folder)
    cmd = built(shlex.split(a.bench))
    common = ["--levels", a.levels, "--gen", a.gen]
    print(f"weights: {gguf.name} as f32 in {folder}; ~128-token prompts, {a.gen} generated, greedy\n")

    theirs_runs, ours_runs = [], []
    for r in range(a.rounds):
        print(f"round {r + 1} of {a.rounds}")
        theirs_runs.append(run_mlx_lm(cmd, folder, common))
        print("\nMinibar:")
        ours_runs.append(bench(cmd, ["--model-path", str(folder)] + common))
        print()
    theirs, ours = median_rows(theirs_runs), median_rows(ours_runs)
    if a.rounds > 1:
        print(f"medians of {a.rounds} rounds:")
    print("\n| clients | Minibar tok/s | mlx_lm.server tok/s | ratio | Minibar p50/p95 TTFT | mlx_lm.server p50/p95 TTFT |")
    print("|---:|---:|---:|---:|---:|---:|")
    for m, r in zip(ours, theirs):
        print(f"| {m['clients']} | {m['tok_s']:.1f} | {r['tok_s']:.1f} | {m['tok_s'] / r['tok_s']:.2f}x "
              f"| {m['ttft_p50_s']:.2f} / {m['ttft_p95_s']:.2f} s | {r['ttft_p50_s']:.2f} / {r['ttft_p95_s']:.2f} s |")
    behind = [m["clients"] for m, r in zip(ours, theirs) if m["tok_s"] < r["tok_s"]]
    print(f"\ntarget: at least mlx_lm.server at every concurrency: "
          + ("met" if not behind else f"NOT met at {behind} clients"))
    by = {m["clients"]: m["tok_s"] for m in ours}
    if 1 in by and 32 in by:
        scale = by[32] / by[1]
        print(f"target: 32 clients at least 3.5x one: {scale:.2f}x, " + ("met" if scale >= 3.5 else "NOT met"))


if __name__ == "__main__":
    main()

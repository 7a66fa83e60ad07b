"""Prints the distribution mlx-lm's samplers draw from, for cases of logits and settings, as
JSON: one list per case, the probability of every token (0 where a filter removed it).

usage: python mlx_lm_sample.py CASES_JSON

CASES_JSON is a list of {"logits": [...], "history": [...], "temperature", "top_p", "top_k",
"min_p", "repetition_penalty", "repetition_context"}. The logits go through mlx-lm's own
pipeline: make_logits_processors (the repetition penalty), the log-softmax of generate_step,
then make_sampler's chain of filters; its final categorical draw is replaced by returning
softmax(logprobs / temperature), which is the distribution it would draw from.
"""

import json
import sys

import mlx.core as mx
from mlx_lm import sample_utils
from mlx_lm.sample_utils import make_logits_processors, make_sampler


def distribution(case):
    captured = {}

    def capture(logits, temp):
        captured["probs"] = mx.softmax(logits * (1.0 / temp), axis=-1)
        return mx.argmax(logits, axis=-1)

    # make_sampler's chain looks categorical_sampling up when it runs.
    sample_utils.categorical_sampling = capture
    logits = mx.array(case["logits"], dtype=mx.float32)[None]
    processors = make_logits_processors(
        repetition_penalty=case["repetition_penalty"],
        repetition_context_size=case["repetition_context"],
    )
    tokens = mx.array(case["history"], dtype=mx.int32)
    if len(case["history"]) > 0:
        for p in processors:
            logits = p(tokens, logits)
    logprobs = logits - mx.logsumexp(logits, keepdims=True)
    sampler = make_sampler(
        temp=case["temperature"],
        top_p=case["top_p"],
        min_p=case["min_p"],
        top_k=case["top_k"],
    )
    token = sampler(logprobs)
    if "probs" not in captured:
        # Greedy: all the mass on the one token.
        probs = mx.zeros(logprobs.shape[-1]).at[token.item()].add(1.0)
        return probs.tolist()
    return captured["probs"][0].astype(mx.float32).tolist()


def main(cases):
    print(json.dumps([distribution(c) for c in cases]))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))

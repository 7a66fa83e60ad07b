"""Reference chat-template renderings by transformers, printed as JSON for minibar-text's tests.

Input (JSON file): {"tokenizer_json": path, "cases": [{"template": str, "bos_token": str|null,
"eos_token": str|null, "messages": [...], "add_generation_prompt": bool, "extra": {...}}]}
Output: a list with, per case, {"ok": rendered text} or {"error": message}.
Each case goes through transformers' own apply_chat_template(..., tokenize=False).
"""

import json
import sys


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)

    from transformers import PreTrainedTokenizerFast

    out = []
    for case in spec["cases"]:
        specials = {k: case[k] for k in ("bos_token", "eos_token") if case.get(k) is not None}
        tok = PreTrainedTokenizerFast(tokenizer_file=spec["tokenizer_json"], **specials)
        try:
            text = tok.apply_chat_template(
                case["messages"],
                chat_template=case["template"],
                add_generation_prompt=case["add_generation_prompt"],
                tokenize=False,
                **case.get("extra", {}),
            )
            out.append({"ok": text})
        except Exception as e:  # the template's raise_exception, reported for comparison
            out.append({"error": f"{type(e).__name__}: {e}"})
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()

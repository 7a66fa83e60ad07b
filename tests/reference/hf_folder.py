"""How transformers reads the tokenizer side of Hugging Face model folders, printed as JSON for
minibar-text's tests.

Usage: hf_folder.py conversation.json DIR...
Output: per folder {"bos_token", "eos_token", "bos_token_id", "eos_token_id",
"generation_eos" (generation_config's eos_token_id or null), "rendered"
(apply_chat_template(conversation, add_generation_prompt=True, tokenize=False) or null)}.
"""

import json
import sys


def main():
    from transformers import AutoTokenizer, GenerationConfig

    with open(sys.argv[1], encoding="utf-8") as f:
        conversation = json.load(f)
    out = []
    for d in sys.argv[2:]:
        tok = AutoTokenizer.from_pretrained(d)
        try:
            gen = GenerationConfig.from_pretrained(d).eos_token_id
        except OSError:
            gen = None
        try:
            rendered = tok.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        except ValueError:  # no template
            rendered = None
        out.append({
            "bos_token": tok.bos_token, "eos_token": tok.eos_token,
            "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
            "generation_eos": gen, "rendered": rendered,
        })
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()

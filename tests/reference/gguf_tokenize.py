"""Reference tokenization of a GGUF vocabulary, printed as JSON for minibar-text's tests.

Peers:
  * llama.cpp (through llama-cpp-python, vocab only): the tokenizer a GGUF is defined by;
  * transformers loading the tokenizer.json that minibar-text generated: checks the file is
    valid for Python and encodes/decodes like the Rust side.

Usage: gguf_tokenize.py --gguf FILE --corpus corpus.json --workdir DIR
                        --case PRE TOKENIZER_JSON [--case PRE TOKENIZER_JSON ...]
Each case compares one tokenizer.json; PRE "-" uses the GGUF as it is, any other PRE writes a
vocab-only copy of the GGUF whose tokenizer.ggml.pre is PRE, so other pre-tokenizers can be
checked against llama.cpp with the same vocabulary.
Output: {"cases": [{"llama_cpp": [[ids]], "transformers": [[ids]], "tokenizers_decode": [str]}]}
"""

import argparse
import json
import os
import sys


_FIELDS = {}


def rewrite_pre(src, pre, workdir):
    """A vocab-only copy of `src` (all metadata, no tensors) with tokenizer.ggml.pre = pre."""
    import gguf

    if src not in _FIELDS:  # reading the 49k-token arrays is the slow part: once per file
        reader = gguf.GGUFReader(src)
        fields = []
        for name, field in reader.fields.items():
            if name.startswith("GGUF."):
                continue
            vtype = field.types[0]
            sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            fields.append((name, field.contents(), vtype, sub))
        _FIELDS[src] = fields
    fields = _FIELDS[src]
    arch = next(v for n, v, _, _ in fields if n == "general.architecture")
    out = os.path.join(workdir, f"vocab-{pre}.gguf")
    writer = gguf.GGUFWriter(out, arch=arch)
    for name, value, vtype, sub in fields:
        if name == "general.architecture":
            continue
        if name == "tokenizer.ggml.pre":
            value = pre
        writer.add_key_value(name, value, vtype, sub_type=sub)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--case", nargs=2, action="append", required=True, metavar=("PRE", "TOKENIZER_JSON"))
    ap.add_argument("--workdir", default=".")
    args = ap.parse_args()

    with open(args.corpus, encoding="utf-8") as f:
        corpus = json.load(f)

    from llama_cpp import Llama
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    cases = []
    for pre, tokenizer_json in args.case:
        path = args.gguf if pre == "-" else rewrite_pre(args.gguf, pre, args.workdir)
        llm = Llama(model_path=path, vocab_only=True, verbose=False)
        llama_ids = [llm.tokenize(t.encode("utf-8"), add_bos=False, special=True) for t in corpus]
        hf = PreTrainedTokenizerFast(tokenizer_file=tokenizer_json)
        hf_ids = [hf.encode(t, add_special_tokens=False) for t in corpus]
        raw = Tokenizer.from_file(tokenizer_json)
        decoded = [raw.decode(ids, skip_special_tokens=False) for ids in hf_ids]
        cases.append({"llama_cpp": llama_ids, "transformers": hf_ids, "tokenizers_decode": decoded})

    json.dump({"cases": cases}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()

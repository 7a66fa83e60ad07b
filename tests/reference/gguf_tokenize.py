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


def rewrite_pre(src, pre, workdir):
    """A vocab-only copy of `src` (all metadata, no tensors) with tokenizer.ggml.pre = pre."""
    import gguf

    reader = gguf.GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    out = os.path.join(workdir, f"vocab-{pre}.gguf")
    writer = gguf.GGUFWriter(out, arch=arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vtype = field.types[0]
        value = pre if name == "tokenizer.ggml.pre" else field.contents()
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
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

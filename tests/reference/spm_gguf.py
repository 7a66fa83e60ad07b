"""Makes a small SentencePiece-BPE (tokenizer.ggml.model = "llama") vocab-only GGUF for
minibar-text's tests: trains a real SentencePiece model with byte fallback on the given text
files, then writes its pieces, scores and types the way llama.cpp's converter does, with the
hyperparameters of a base GGUF so llama.cpp's loader accepts the file.

Usage: spm_gguf.py --base BASE.gguf --out OUT.gguf TEXT_FILE...
Prints {"gguf": OUT.gguf, "vocab_size": n}.
"""

import argparse
import json
import os
import sys
import tempfile

import gguf
import sentencepiece as spm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("texts", nargs="+")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp()
    prefix = os.path.join(workdir, "spm")
    spm.SentencePieceTrainer.train(
        input=",".join(args.texts), model_prefix=prefix, model_type="bpe", vocab_size=800,
        hard_vocab_limit=False, byte_fallback=True, character_coverage=1.0,
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        split_digits=True, num_threads=1, minloglevel=2,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
    )
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")

    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        elif sp.is_unused(i):
            types.append(gguf.TokenType.UNUSED)
        else:
            types.append(gguf.TokenType.NORMAL)

    base = gguf.GGUFReader(args.base)
    arch = base.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(args.out, arch=arch)
    for name, field in base.fields.items():
        if name.startswith("GGUF.") or name.startswith("tokenizer.") or name == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(name, field.contents(), vtype, sub_type=sub)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    json.dump({"gguf": args.out, "vocab_size": len(tokens)}, sys.stdout)


if __name__ == "__main__":
    main()

"""Every metadata key/value of a GGUF file as read by the `gguf` package (llama.cpp's own
Python reader), printed as JSON for minibar-text's tests.

Usage: gguf_metadata.py FILE
Output: {"version": int, "tensor_count": int, "kv": {key: {"type": name, "value": v}},
         "tensors": [{"name", "dims", "type", "offset"}], "data_offset": int}
"""

import json
import math
import sys

import gguf


def plain(v):
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def main():
    r = gguf.GGUFReader(sys.argv[1])
    kv = {}
    for name, field in r.fields.items():
        if name.startswith("GGUF."):
            continue
        kv[name] = {"type": field.types[0].name, "value": plain(field.contents())}
    tensors = [
        {"name": t.name, "dims": [int(d) for d in t.shape], "type": int(t.tensor_type),
         "offset": int(t.data_offset - r.data_offset)}
        for t in r.tensors
    ]
    json.dump(
        {"version": int(r.fields["GGUF.version"].contents()), "kv": kv, "tensors": tensors,
         "data_offset": int(r.data_offset)},
        sys.stdout, ensure_ascii=False,
    )


if __name__ == "__main__":
    main()

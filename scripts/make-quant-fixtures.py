#!/usr/bin/env python3
"""Reference dequantization fixtures for every tensor type Chorus reads.

Random blocks of each type (random bytes, with every f16 scale field set to a finite random half),
decoded by the `gguf` package's reference dequantizers (pip install gguf==0.19.0). Writes
Tests/ChorusModelTests/Fixtures/dequantize.json: {type: {"id", "bytes" (hex), "values" [floats]}}.
Run from the repository root; the output is committed, CI does not run this.
"""
import json
import sys

import numpy as np
from gguf import GGMLQuantizationType as T, GGML_QUANT_SIZES, quants

rng = np.random.default_rng(20261201)
# (type, byte offsets of f16 fields within a block)
types = {
    "F32": (T.F32, []), "F16": (T.F16, None), "BF16": (T.BF16, None),
    "Q4_0": (T.Q4_0, [0]), "Q4_1": (T.Q4_1, [0, 2]), "Q5_0": (T.Q5_0, [0]), "Q5_1": (T.Q5_1, [0, 2]),
    "Q8_0": (T.Q8_0, [0]), "Q2_K": (T.Q2_K, [80, 82]), "Q3_K": (T.Q3_K, [108]), "Q4_K": (T.Q4_K, [0, 2]),
    "Q5_K": (T.Q5_K, [0, 2]), "Q6_K": (T.Q6_K, [208]),
}
out = {}
for name, (qtype, halves) in types.items():
    block, size = GGML_QUANT_SIZES[qtype]
    blocks = 512 // block if block > 1 else 512
    if qtype == T.F32:
        raw = rng.normal(0, 2, blocks).astype(np.float32).view(np.uint8)
    elif qtype in (T.F16, T.BF16):
        values = rng.normal(0, 2, blocks).astype(np.float32)
        raw = values.astype(np.float16).view(np.uint8) if qtype == T.F16 else \
            (values.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    else:
        raw = rng.integers(0, 256, blocks * size, dtype=np.uint8).reshape(blocks, size)
        for off in halves:
            h = (rng.uniform(0.001, 0.05, blocks) * rng.choice([-1, 1], blocks)).astype(np.float16)
            raw[:, off:off + 2] = h.view(np.uint8).reshape(blocks, 2)
        raw = raw.reshape(-1)
    values = quants.dequantize(raw, qtype).astype(np.float32).reshape(-1)
    assert np.all(np.isfinite(values)), name
    out[name] = {"id": int(qtype), "bytes": raw.tobytes().hex(), "values": [float(v) for v in values]}
json.dump(out, open(sys.argv[1] if len(sys.argv) > 1 else "Tests/ChorusModelTests/Fixtures/dequantize.json", "w"))

#!/usr/bin/env python3
"""Reference inputs and outputs for the kernel tests (tests/test_kernels_*.c).

PyTorch computes the float ops, the `gguf` package (llama.cpp's own Python
code) quantizes and dequantizes the GGML block formats, numpy does the IEEE
half conversions. Everything is seeded, so a rerun writes the same bytes.

Layout of tests/fixtures/ops/: index.json maps a case name to its scalar
parameters and its tensors; each tensor is a raw little-endian file
<case>.<tensor>.bin with its dtype (f32, i32, u16, u8) and shape in the index.

    python3 tools/make_op_fixtures.py [out_dir]
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from gguf import GGMLQuantizationType as QT
from gguf import quants

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "tests", "fixtures", "ops")
INDEX = {}
RNG = np.random.default_rng(1234)
torch.manual_seed(1234)

QTYPES = {"q8_0": QT.Q8_0, "q4_0": QT.Q4_0, "q4_1": QT.Q4_1}


def add(case, params, **tensors):
    entry = {"params": params, "tensors": {}}
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dtype = {np.float32: "f32", np.int32: "i32", np.uint16: "u16",
                 np.uint8: "u8"}[arr.dtype.type]
        fname = f"{case}.{name}.bin"
        arr.astype(arr.dtype.newbyteorder("<")).tofile(os.path.join(OUT, fname))
        entry["tensors"][name] = {"file": fname, "dtype": dtype, "shape": list(arr.shape)}
    INDEX[case] = entry


def randn(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def f32(t):
    return t.detach().to(torch.float32).numpy()


def weight_bytes(w, dtype):
    """w (f32 [rows, cols]) stored in dtype: raw bytes [rows, row_bytes] and
    the f32 values those bytes hold."""
    if dtype == "f32":
        return w.view(np.uint8).reshape(w.shape[0], -1), w
    if dtype == "f16":
        h = w.astype(np.float16)
        return h.view(np.uint8).reshape(w.shape[0], -1), h.astype(np.float32)
    if dtype == "bf16":
        b = quants.quantize(w, QT.BF16)
        return b.reshape(w.shape[0], -1), quants.dequantize(b, QT.BF16).astype(np.float32)
    q = quants.quantize(w, QTYPES[dtype])
    return q, quants.dequantize(q, QTYPES[dtype]).astype(np.float32)


def conversions():
    # f32 -> f16: random values over the whole half range, the boundaries
    # (largest half, overflow threshold, smallest normal and subnormal), and
    # values exactly halfway between two halves (ties to even).
    halves = np.arange(0, 0x7c00, 37, dtype=np.uint16).view(np.float16).astype(np.float32)
    nxt = (np.arange(0, 0x7c00, 37, dtype=np.uint16) + 1).view(np.float16).astype(np.float32)
    ties = ((halves.astype(np.float64) + nxt.astype(np.float64)) / 2).astype(np.float32)
    special = np.array([0.0, -0.0, 65504.0, 65519.99, 65520.0, 1e6, -1e6, np.inf, -np.inf,
                        2.0**-14, 2.0**-24, 2.0**-25, 2.0**-25 * 1.0001, 2.0**-26, 1e-10,
                        6.1e-5, 5.96e-8, 1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11], dtype=np.float32)
    rnd = (RNG.standard_normal(500) * np.exp2(RNG.uniform(-26, 17, 500))).astype(np.float32)
    x = np.concatenate([special, -special, halves, ties, -ties, rnd]).astype(np.float32)
    with np.errstate(over="ignore"):  # the values past 65520 are meant to become inf
        h = x.astype(np.float16)
    add("f16_from_f32", {}, x=x, h=h.view(np.uint16))
    # f16 -> f32: every 31st half including subnormals, inf; NaNs left out
    h = np.array([i for i in range(0, 65536, 31) if (i & 0x7c00) != 0x7c00 or (i & 0x3ff) == 0]
                 + [0x7c00, 0xfc00, 0x0001, 0x8001, 0x03ff, 0x0400, 0x7bff], dtype=np.uint16)
    add("f16_to_f32", {}, h=h, x=h.view(np.float16).astype(np.float32))
    # bf16 with llama.cpp's rounding (gguf's BF16 mirrors ggml_compute_fp32_to_bf16)
    bx = np.concatenate([special, randn(300, scale=100.0),
                         np.array([1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8], dtype=np.float32)])
    add("bf16", {}, x=bx.astype(np.float32),
        h=quants.quantize(bx.astype(np.float32), QT.BF16).view(np.uint16))


def quant_rows():
    # 8 rows of 4 blocks: random data at different scales plus the blocks
    # where rounding rules show: all zero, constant, exact .5 ties after
    # scaling, a negative value of largest magnitude, values so small that
    # the f16 scale is subnormal.
    x = randn(8, 128)
    x[0, :32] = 0.0
    x[0, 32:64] = 0.75
    x[1, :32] = np.arange(32, dtype=np.float32) - 12.5
    x[1, 32:64] = -x[1, :32]
    x[2, :32] *= 1e-6
    x[2, 32:64] = np.linspace(-3.0, 1.0, 32, dtype=np.float32)
    x[3] *= 1000.0
    x[4, :32] = (np.arange(32) % 16).astype(np.float32)
    x[5, 64:96] = np.float32(2.0**-20) * (np.arange(32) - 16)
    for name, qt in QTYPES.items():
        q = quants.quantize(x, qt)
        add(f"quant_{name}", {"rows": 8, "cols": 128}, x=x, q=q,
            deq=quants.dequantize(q, qt).astype(np.float32))


def matmuls():
    # (name, tokens, out rows, in cols): one token (decode), token counts
    # that are not multiples of the 4-token tile nor of the thread count,
    # odd block counts, and enough tokens for the sgemm paths
    shapes = [("n1", 1, 37, 128), ("n3", 3, 19, 96), ("n7", 7, 33, 160), ("n21", 21, 40, 64)]
    for dtype in ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"]:
        for name, n, m, k in shapes:
            if dtype in ("f32", "f16", "bf16") and name == "n3":
                k = 100  # float rows need not be a multiple of the vector width
            w = randn(m, k, scale=0.5)
            x = randn(n, k)
            wb, wf = weight_bytes(w, dtype)
            out = torch.from_numpy(x).double() @ torch.from_numpy(wf).double().T
            add(f"matmul_{dtype}_{name}", {"n": n, "rows": m, "cols": k, "dtype": dtype},
                x=x, w=wb, out=f32(out))


def embeddings():
    ids = np.array([3, 0, 9, 3, 7], dtype=np.int32)
    for dtype in ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"]:
        table = randn(10, 64)
        tb, tf = weight_bytes(table, dtype)
        add(f"embedding_{dtype}", {"n": 5, "rows": 10, "cols": 64, "dtype": dtype},
            ids=ids, table=tb, out=tf[ids])


def norms():
    x, w = randn(3, 96, scale=3.0), randn(96)
    xt = torch.from_numpy(x)
    # HF LlamaRMSNorm in f32
    var = xt.pow(2).mean(-1, keepdim=True)
    add("rmsnorm", {"n": 3, "dim": 96, "eps": 1e-6}, x=x, weight=w,
        out=f32(torch.from_numpy(w) * (xt * torch.rsqrt(var + 1e-6))))
    x, w, b = randn(4, 80, scale=2.0) + 5.0, randn(80), randn(80)
    add("layernorm", {"n": 4, "dim": 80, "eps": 1e-12}, x=x, weight=w, bias=b,
        out=f32(F.layer_norm(torch.from_numpy(x), (80,), torch.from_numpy(w),
                             torch.from_numpy(b), eps=1e-12)))


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def ropes():
    pos = np.array([0, 1, 17, 300, 511], dtype=np.int32)
    for hd, theta in [(64, 10000.0), (32, 100000.0)]:
        heads = 3
        x = randn(len(pos), heads * hd)
        # HF LlamaRotaryEmbedding / apply_rotary_pos_emb, f32 throughout
        inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
        freqs = torch.from_numpy(pos).float()[:, None] @ inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
        q = torch.from_numpy(x).view(len(pos), heads, hd)
        neox = q * cos + rotate_half(q) * sin
        # adjacent pairs (2i, 2i+1) rotated by the same angles
        c, s = freqs.cos()[:, None, :], freqs.sin()[:, None, :]
        a, b = q[..., 0::2], q[..., 1::2]
        norm = torch.stack((a * c - b * s, a * s + b * c), dim=-1).reshape(q.shape)
        params = {"n": len(pos), "n_heads": heads, "head_dim": hd, "theta": theta}
        add(f"rope_neox_{hd}", params, x=x, pos=pos, out=f32(neox.reshape(len(pos), -1)))
        add(f"rope_norm_{hd}", params, x=x, pos=pos, out=f32(norm.reshape(len(pos), -1)))


def attentions():
    cases = [  # name, n, pos0, heads, kv heads, head_dim, window, causal
        ("decode_gqa4", 1, 9, 4, 1, 64, 0, 1),
        ("prefill_gqa3", 6, 0, 6, 2, 32, 0, 1),
        ("chunk_mha", 5, 4, 4, 4, 32, 0, 1),
        ("window_small", 7, 3, 8, 2, 32, 4, 1),
        ("window_large", 4, 2, 4, 2, 64, 100, 1),
        ("bert", 7, 0, 4, 4, 32, 0, 0),
        ("long", 3, 100, 2, 1, 32, 0, 1),  # more keys than one chunk of 64
        ("long_window", 3, 100, 2, 1, 32, 70, 1),
    ]
    for name, n, pos0, nh, nkv, hd, window, causal in cases:
        kv_len = pos0 + n
        q, k, v = randn(n, nh * hd, scale=2.0), randn(kv_len, nkv * hd, scale=2.0), randn(kv_len, nkv * hd)
        qt = torch.from_numpy(q).double().view(n, nh, hd).transpose(0, 1)
        kt = torch.from_numpy(k).double().view(kv_len, nkv, hd).transpose(0, 1)
        vt = torch.from_numpy(v).double().view(kv_len, nkv, hd).transpose(0, 1)
        kt = kt.repeat_interleave(nh // nkv, dim=0)
        vt = vt.repeat_interleave(nh // nkv, dim=0)
        scores = qt @ kt.transpose(1, 2) / math.sqrt(hd)
        qpos = torch.arange(n)[:, None] + pos0
        kpos = torch.arange(kv_len)[None, :]
        allowed = torch.ones(n, kv_len, dtype=torch.bool)
        if causal:
            allowed &= kpos <= qpos
        if window > 0:
            allowed &= kpos > qpos - window
        scores = scores.masked_fill(~allowed, float("-inf"))
        out = (torch.softmax(scores, dim=-1) @ vt).transpose(0, 1).reshape(n, nh * hd)
        add(f"attention_{name}", {"n": n, "pos0": pos0, "n_heads": nh, "n_kv_heads": nkv,
                                  "head_dim": hd, "window": window, "causal": causal},
            q=q, k=k, v=v, out=f32(out))


def elementwise():
    x = randn(3, 50, scale=5.0)
    x[1, :5] = [1000.0, 999.0, -1000.0, 998.5, 0.0]
    x[2] -= 1e4
    xt = torch.from_numpy(x).double()
    add("softmax", {"n": 3, "dim": 50}, x=x, out=f32(torch.softmax(xt, -1)),
        log_out=f32(torch.log_softmax(xt, -1)))
    g, u = randn(300, scale=6.0), randn(300)
    g[:4] = [-100.0, 100.0, 0.0, -20.0]
    add("swiglu", {"len": 300}, gate=g, up=u,
        out=f32(F.silu(torch.from_numpy(g)) * torch.from_numpy(u)))
    x = randn(300, scale=4.0)
    add("gelu", {"len": 300}, x=x, out=f32(F.gelu(torch.from_numpy(x))))
    x, y = randn(100), randn(100)
    add("add", {"len": 100}, x=x, y=y, out=x + y)
    x = RNG.integers(-50, 50, 1000).astype(np.float32)
    add("argmax", {"len": 1000, "index": int(np.argmax(x))}, x=x)


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".bin"):
            os.remove(os.path.join(OUT, f))
    conversions()
    quant_rows()
    matmuls()
    embeddings()
    norms()
    ropes()
    attentions()
    elementwise()
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(INDEX, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the model-file fixtures of tests/model_files/test_gguf.c and tests/model_files/test_safetensors.c.

The files are made by the reference writers: the `gguf` package's GGUFWriter
(with its own quantizers for Q8_0/Q4_0/Q4_1/BF16), safetensors' save_file and
huggingface_hub's sharded save_torch_state_dict. expected.json records what
went into them (values, shapes, bytes) and, for GGUF, where the `gguf`
package's reader finds each tensor, so the C readers are checked against
independent code. It also summarises the llama.cpp vocab GGUFs in data/vocab,
read by GGUFReader, and copies small files into the fuzz seed corpora.

Run from the repository root:
    python3 tools/make_file_fixtures.py [--data data]
"""
import argparse
import json
import os
import shutil
from pathlib import Path

import gguf
import numpy as np
import torch
from gguf.quants import quantize
from huggingface_hub import save_torch_state_dict
from safetensors.torch import save_file

T = gguf.GGMLQuantizationType
V = gguf.GGUFValueType
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "files"
CORPUS = ROOT / "tests" / "fuzz" / "corpus"

rng = np.random.default_rng(20240607)

# Metadata of every scalar type, at the edges of their ranges.
SCALARS = [
    ("test.uint8", V.UINT8, 255),
    ("test.int8", V.INT8, -128),
    ("test.uint16", V.UINT16, 65535),
    ("test.int16", V.INT16, -32768),
    ("test.uint32", V.UINT32, 4000000000),
    ("test.int32", V.INT32, -2000000000),
    ("test.float32", V.FLOAT32, float(np.float32(3.14159))),
    ("test.bool", V.BOOL, True),
    ("test.string", V.STRING, "héllo wörld ✓"),
    ("test.uint64", V.UINT64, 2**64 - 2),
    ("test.int64", V.INT64, -(2**62) - 7),
    ("test.float64", V.FLOAT64, 2.718281828459045),
    ("test.small_uint32", V.UINT32, 7),
    ("test.negative_int32", V.INT32, -5),
]
ARRAYS = [
    ("test.arr_uint8", V.UINT8, [0, 1, 254, 255]),
    ("test.arr_int8", V.INT8, [-128, 0, 127]),
    ("test.arr_uint16", V.UINT16, [1, 65535]),
    ("test.arr_int16", V.INT16, [-32768, 32767, 3]),
    ("test.arr_uint32", V.UINT32, [1, 2, 4294967295]),
    ("test.arr_int32", V.INT32, [-1, 0, 2147483647, -2147483648]),
    ("test.arr_float32", V.FLOAT32, [float(np.float32(x)) for x in (0.5, -1.25, 1e-7, 65504.0)]),
    ("test.arr_bool", V.BOOL, [True, False, True]),
    ("test.arr_string", V.STRING, ["", "a", "<0x0A>", "Ġthe", "日本語", "x" * 300]),
    ("test.arr_uint64", V.UINT64, [0, 2**64 - 1]),
    ("test.arr_int64", V.INT64, [-(2**63), 2**63 - 1]),
    ("test.arr_float64", V.FLOAT64, [1e300, -2.5e-300]),
]


def hexbytes(b: bytes) -> str:
    return b.hex()


def gguf_tensor(name, shape, qtype):
    """A tensor of random values in `qtype`: (data for the writer, raw bytes)."""
    x = rng.standard_normal(shape).astype(np.float32)
    if qtype == T.F32:
        data = x
    elif qtype == T.F16:
        data = x.astype(np.float16)
    else:
        data = quantize(x, qtype)
    return name, shape, qtype, data


def write_gguf(path: Path, arch: str, tensors, scalars=(), arrays=(), alignment=None,
               extra_arrays=()):
    w = gguf.GGUFWriter(str(path), arch)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    for key, vtype, value in scalars:
        w.add_key_value(key, value, vtype)
    for key, vtype, values in arrays:
        w.add_key_value(key, values, V.ARRAY, sub_type=vtype)
    for key, values in extra_arrays:
        w.add_array(key, values)
    for name, shape, qtype, data in tensors:
        if qtype in (T.F32, T.F16):
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, data, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def json_value(vtype, value):
    """Integers as decimal strings (uint64 does not fit a JSON reader's int64)."""
    if vtype == V.STRING or vtype == V.BOOL or vtype in (V.FLOAT32, V.FLOAT64):
        return value
    return str(value)


def gguf_expectation(path: Path, arch, tensors, scalars=(), arrays=(), alignment=32):
    """What the C reader must find, cross-checked here with GGUFReader."""
    reader = gguf.GGUFReader(str(path))
    found = {t.name: t for t in reader.tensors}
    out_tensors = []
    for name, shape, qtype, data in tensors:
        raw = data.tobytes()
        t = found[name]
        assert t.tensor_type == qtype and t.n_bytes == len(raw), name
        assert bytes(reader.data[t.data_offset:t.data_offset + t.n_bytes]) == raw, name
        out_tensors.append({
            "name": name,
            "ggml_type": int(qtype),
            "ne": list(reversed(shape)),
            "offset": int(t.data_offset),
            "hex": hexbytes(raw),
        })
    kv = [{"key": "general.architecture", "type": "string", "value": arch}]
    if alignment != 32:
        kv.append({"key": "general.alignment", "type": "uint32", "value": str(alignment)})
    for key, vtype, value in scalars:
        assert reader.fields[key].contents() == value, key
        kv.append({"key": key, "type": vtype.name.lower(), "value": json_value(vtype, value)})
    for key, vtype, values in arrays:
        assert reader.fields[key].contents() == values, key
        kv.append({"key": key, "type": "array", "arr_type": vtype.name.lower(),
                   "value": [json_value(vtype, v) for v in values]})
    return {"file": path.name, "version": 3, "alignment": alignment, "kv": kv,
            "tensors": out_tensors}


def make_gguf_files(expected):
    tiny = [
        gguf_tensor("f32.matrix", (3, 8), T.F32),
        gguf_tensor("f32.vector", (5,), T.F32),
        gguf_tensor("f32.4d", (2, 1, 3, 2), T.F32),
        gguf_tensor("f16.matrix", (2, 4), T.F16),
        gguf_tensor("f16.3d", (2, 3, 4), T.F16),
        gguf_tensor("bf16.matrix", (3, 6), T.BF16),
        gguf_tensor("blk.0.q8_0.weight", (2, 64), T.Q8_0),
        gguf_tensor("blk.0.q4_0.weight", (3, 32), T.Q4_0),
        gguf_tensor("blk.0.q4_1.weight", (2, 64), T.Q4_1),
    ]
    write_gguf(OUT / "tiny.gguf", "tiny", tiny, SCALARS, ARRAYS)
    expected["tiny.gguf"] = gguf_expectation(OUT / "tiny.gguf", "tiny", tiny, SCALARS, ARRAYS)

    aligned = [gguf_tensor("a", (1, 32), T.Q8_0), gguf_tensor("b", (3,), T.F32),
               gguf_tensor("c", (2, 2), T.F16)]
    write_gguf(OUT / "aligned64.gguf", "tiny", aligned, alignment=64)
    expected["aligned64.gguf"] = gguf_expectation(OUT / "aligned64.gguf", "tiny", aligned,
                                                  alignment=64)

    # Valid for the Python writer, refused by llama.cpp and memllm.
    write_gguf(OUT / "nested_array.gguf", "tiny", [gguf_tensor("x", (4,), T.F32)],
               extra_arrays=[("test.nested", [["a", "b"], ["c"]])])
    # A type memllm does not compute with: rejected with the tensor's name.
    write_gguf(OUT / "q5_0.gguf", "tiny", [gguf_tensor("blk.0.ffn_down.weight", (2, 32), T.Q5_0)])


def torch_bytes(t: torch.Tensor) -> bytes:
    return bytes(t.contiguous().untyped_storage())


def st_expectation(tensors):
    return [{"name": name, "dtype": {torch.float32: "F32", torch.float16: "F16",
                                     torch.bfloat16: "BF16"}[t.dtype],
             "shape": list(t.shape), "hex": hexbytes(torch_bytes(t))}
            for name, t in tensors.items()]


def random_tensor(shape, dtype):
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32)).to(dtype)


def make_safetensors_files(expected):
    single = {
        "model.embed_tokens.weight": random_tensor((6, 4), torch.float32),
        "model.layers.0.mlp.up_proj.weight": random_tensor((3, 4), torch.float16),
        "model.layers.0.self_attn.q_proj.weight": random_tensor((4, 4), torch.bfloat16),
        "model.norm.weight": random_tensor((4,), torch.float32),
        "scalar": random_tensor((), torch.float32),
        "four.d": random_tensor((2, 1, 2, 3), torch.bfloat16),
        "empty": random_tensor((0, 4), torch.float16),
    }
    (OUT / "st_single").mkdir(parents=True, exist_ok=True)
    save_file(single, str(OUT / "st_single" / "model.safetensors"), metadata={"format": "pt"})
    expected["st_single"] = {"base": "model", "tensors": st_expectation(single)}

    sharded = {
        f"model.layers.{i}.{name}": random_tensor(shape, dtype)
        for i in range(3)
        for name, shape, dtype in [("input_layernorm.weight", (8,), torch.float32),
                                   ("mlp.down_proj.weight", (8, 8), torch.bfloat16),
                                   ("self_attn.o_proj.weight", (8, 8), torch.float16)]
    }
    shard_dir = OUT / "st_sharded"
    shutil.rmtree(shard_dir, ignore_errors=True)
    shard_dir.mkdir(parents=True)
    save_torch_state_dict(sharded, str(shard_dir), max_shard_size=400)
    shards = sorted(p.name for p in shard_dir.glob("*.safetensors"))
    assert len(shards) > 1, shards
    expected["st_sharded"] = {"base": "model", "shards": shards,
                              "tensors": st_expectation(sharded)}

    # An integer buffer beside a weight, as in BERT checkpoints (all-MiniLM).
    with_buffer = {"ok": random_tensor((2,), torch.float32),
                   "position_ids": torch.arange(4, dtype=torch.int64)}
    save_file(with_buffer, str(OUT / "int64.safetensors"))


def vocab_summary(path: Path):
    """Every key of a vocab GGUF with its type; values of scalars and strings;
    length and spread samples of arrays, as GGUFReader reads them."""
    reader = gguf.GGUFReader(str(path))
    kv = []
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        vtype = field.types[0]
        entry = {"key": key, "type": vtype.name.lower()}
        if vtype == V.ARRAY:
            sub = field.types[-1]
            n = len(field.data)
            idx = sorted({0, 1, n // 3, n // 2, n - 2, n - 1})
            entry.update({"arr_type": sub.name.lower(), "len": n,
                          "samples": [[i, json_value(sub, field.contents(i))] for i in idx]})
        else:
            entry["value"] = json_value(vtype, field.contents())
        kv.append(entry)
    return {"file": path.name, "n_tensors": len(reader.tensors), "kv": kv}


def copy_corpus():
    for area, names in [("gguf", ["tiny.gguf", "aligned64.gguf", "nested_array.gguf",
                                  "q5_0.gguf"]),
                        ("safetensors", ["st_single/model.safetensors", "int64.safetensors"])]:
        d = CORPUS / area
        d.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(OUT / name, d / name.replace("/", "_"))
    shards = sorted((OUT / "st_sharded").glob("*.safetensors"))
    shutil.copyfile(shards[0], CORPUS / "safetensors" / "shard.safetensors")
    # Small seeds that reach the corners quickly: metadata only, a scalar,
    # an empty tensor and a 4-D one.
    seeds = {
        "metadata_only": ({"__metadata__": {"format": "pt"}}, 0),
        "scalar_f16": ({"s": {"dtype": "F16", "shape": [], "data_offsets": [0, 2]}}, 2),
        "empty_bf16": ({"e": {"dtype": "BF16", "shape": [0, 3], "data_offsets": [0, 0]}}, 0),
        "four_d_f32": ({"t": {"dtype": "F32", "shape": [1, 2, 1, 2], "data_offsets": [0, 16]}},
                       16),
    }
    for name, (header, n_data) in seeds.items():
        text = json.dumps(header, separators=(",", ":")).encode()
        blob = len(text).to_bytes(8, "little") + text + bytes(range(n_data))
        (CORPUS / "safetensors" / f"{name}.safetensors").write_bytes(blob)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("MEMLLM_DATA", ROOT / "data")))
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    expected = {"gguf": {}, "safetensors": {}, "vocab": []}
    make_gguf_files(expected["gguf"])
    make_safetensors_files(expected["safetensors"])
    for path in sorted((args.data / "vocab").glob("*.gguf")):
        expected["vocab"].append(vocab_summary(path))
    with open(OUT / "expected.json", "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    copy_corpus()


if __name__ == "__main__":
    main()

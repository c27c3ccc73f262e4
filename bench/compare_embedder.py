#!/usr/bin/env python3
"""Embedding throughput: memllm's BERT embedder vs sentence-transformers.

  python3 bench/compare_embedder.py --bench BUILD/bench/bench_embedder \\
      [--model DIR] [--texts N] [--batch1 N]

Takes the first N distinct entity names of Re-DocRED dev (the texts a memory
import embeds), runs bench_embedder on them (memllm's kernels), then
sentence-transformers (PyTorch, CPU, float32, all cores) on the same texts
at batch 1 and batch 32, and prints embeddings/s of both and their ratio.
Both run in this one process tree on the same machine, one after the other.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def entity_names(path, n):
    with open(path) as f:
        docs = json.load(f)
    names, seen = [], set()
    for d in docs:
        for mentions in d["vertexSet"]:
            name = " ".join(mentions[0]["name"].split())
            if name and name not in seen:
                seen.add(name)
                names.append(name)
                if len(names) == n:
                    return names
    return names


def st_rate(model, texts, batch):
    model.encode(texts[:32], batch_size=32)  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch):
        model.encode(texts[i:i + batch], batch_size=batch, convert_to_numpy=True)
    return len(texts) / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", required=True, help="the bench_embedder program")
    ap.add_argument("--model", default=os.path.join(
        os.environ.get("MEMLLM_MODELS_DIR", os.path.join(REPO, "models")), "all-MiniLM-L6-v2"))
    ap.add_argument("--data", default=os.environ.get(
        "MEMLLM_DATA", os.path.join(REPO, "data")))
    ap.add_argument("--texts", type=int, default=2048)
    ap.add_argument("--batch1", type=int, default=256)
    args = ap.parse_args()

    texts = entity_names(os.path.join(args.data, "redocred", "dev_revised.json"), args.texts)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(texts) + "\n")
        texts_file = f.name
    try:
        out = subprocess.run([args.bench, args.model, texts_file, str(args.batch1)],
                             check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(texts_file)
    print(out, end="")
    ours = {int(b): float(r) for b, r in re.findall(r"batch (\d+):.* ([\d.]+) embeddings/s", out)}

    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(os.cpu_count() or 1)
    model = SentenceTransformer(args.model, device="cpu")
    theirs = {1: st_rate(model, texts[:args.batch1], 1), 32: st_rate(model, texts, 32)}
    print(f"sentence-transformers {sys.modules['sentence_transformers'].__version__}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for b in (1, 32):
        print(f"batch {b}: memllm {ours[b]:.1f}/s, sentence-transformers {theirs[b]:.1f}/s, "
              f"ratio {ours[b] / theirs[b]:.2f}")


if __name__ == "__main__":
    main()

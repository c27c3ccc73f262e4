#!/usr/bin/env python3
"""Reference sentence embeddings for tests/embedder/test_embedder_bert.c.

  python3 tools/make_embedder_fixtures.py [--models-dir DIR] [--data DIR]

Embeds ~50 texts with sentence-transformers (PyTorch, CPU, float32) from the
same model directory memllm loads (all-MiniLM-L6-v2 as deploy/fetch-models.sh
installs it) and writes tests/fixtures/embedder/:

  minilm.json   {"model", "sentence_transformers", "max_seq_length", "dim",
                 "embeddings": "minilm.f32",
                 "texts": [{"text", "ids"}]}: ids are the token ids
                 sentence-transformers fed the model (after its truncation).
  minilm.f32    the embeddings, raw little-endian float32, [n_texts][dim],
                 as SentenceTransformer.encode returns them (mean pooling,
                 normalised by the model's Normalize module).

The texts: entity names (the first mention of the first entities of
Re-DocRED dev documents), Wikidata relation labels, and hand-written ones:
paraphrases, unicode (accents, Greek, CJK, emoji), the empty text, and long
texts past the model's 256-token limit (truncation).
"""
import argparse
import json
import os
import sys

import numpy as np
import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(REPO, "tests", "fixtures", "embedder")

RELATION_IDS = ["P19", "P20", "P27", "P17", "P131", "P50", "P57", "P170", "P569", "P570",
                "P26", "P40", "P54", "P264", "P175", "P361"]

HAND_WRITTEN = [
    "birthplace",
    "born in",
    "author",
    "written by",
    "",
    "   ",
    "Zürich",
    "Café Müller naïve résumé",
    "Ελληνική Δημοκρατία",
    "東京タワー",
    "北京大学",
    "Москва",
    "🙂 smiley face",
    "Dancing on Coral",
    "Glenda Adams",
    "U.S. Route 66 (1926–1985)",
    "AT&T's \"Bell Labs\", Inc.",
]


def entity_names(docs, n):
    names = []
    for d in docs:
        for cluster in d["vertexSet"][:2]:
            name = cluster[0]["name"]
            if name not in names:
                names.append(name)
        if len(names) >= n:
            break
    return names[:n]


def long_texts(docs):
    """Two documents' text (~360 tokens), and an entity-sized text near
    memllm's 1 KiB limit made of a word WordPiece splits into many pieces, so
    that it too runs past 256 tokens."""
    two_docs = " ".join(" ".join(s) for d in docs[:2] for s in d["sents"])
    pieces = ("pneumonoultramicroscopic " * 40).strip()
    return [two_docs, pieces]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models-dir", default=os.environ.get("MEMLLM_MODELS_DIR",
                                                           os.path.join(REPO, "models")))
    ap.add_argument("--data", default=os.environ.get(
        "MEMLLM_DATA", os.path.join(REPO, "data")))
    args = ap.parse_args()

    model_dir = os.path.join(args.models_dir, "all-MiniLM-L6-v2")
    with open(os.path.join(args.data, "redocred", "dev_revised.json")) as f:
        docs = json.load(f)
    with open(os.path.join(args.data, "wikidata_props_en.json")) as f:
        props = json.load(f)

    texts = entity_names(docs, 16) + [props[p] for p in RELATION_IDS] + HAND_WRITTEN
    texts += long_texts(docs)

    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = SentenceTransformer(model_dir, device="cpu")
    model.eval()
    emb = model.encode(texts, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
    emb = np.asarray(emb, dtype="<f4")
    ids = [model.preprocess([t])["input_ids"][0].tolist() for t in texts]
    if max(len(i) for i in ids) != model.max_seq_length:
        sys.exit("no text reaches max_seq_length: the truncation is not covered")

    os.makedirs(OUT, exist_ok=True)
    emb.tofile(os.path.join(OUT, "minilm.f32"))
    meta = {
        "model": "all-MiniLM-L6-v2",
        "sentence_transformers": sentence_transformers.__version__,
        "max_seq_length": model.max_seq_length,
        "dim": int(emb.shape[1]),
        "embeddings": "minilm.f32",
        "texts": [{"text": t, "ids": i} for t, i in zip(texts, ids)],
    }
    with open(os.path.join(OUT, "minilm.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(texts)} texts, dim {emb.shape[1]}, longest {max(len(i) for i in ids)} tokens "
          f"-> {OUT}")


if __name__ == "__main__":
    main()

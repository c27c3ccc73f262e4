#!/usr/bin/env python3
"""Replays the MemLLM write loop's stopping rules on a trace, offline.

    python3 tools/mw_replay.py TRACE.jsonl DOCRED.json [--repeats N ...]

TRACE is what `memllm eval extract --trace` wrote for a run with
`--repeats 0` (every write decoded to late stopping's end or the token
limit). Greedy decoding is batch-invariant, so a run with the repeat rule
generates a prefix of each of those texts; this script finds where the rule
ends each write, keeps what memllm_write.c keeps (all of a write the rule
ended, else late stopping's best cut), parses the items as the writer does, and scores the facts against the documents' gold relations as
`memllm eval extract` does. It prints, for each N, the figures eval extract
would print and the characters generated (a proxy for tokens).

With N = 0 it rescores the trace's own run: its figures must equal that
run's output, which checks this replay against the C code.
"""
import argparse
import json
import os
import sys

SPACE = " \t\n\r\v\f"


def repeat_end(text, n):
    """Position of the ';' at which n items in a row have repeated earlier
    ones (memllm_write.c's rule), or None."""
    if n <= 0:
        return None
    seen, run, start = set(), 0, 0
    for i, c in enumerate(text):
        if c != ";":
            continue
        item = text[start:i].strip(" \t\r\n")
        start = i + 1
        if item and item in seen:
            run += 1
        else:
            run = 0
        if item:
            seen.add(item)
        if run >= n:
            return i
    return None


def kept_text(line, n):
    """The text the writer keeps for this sentence under --repeats n: a
    write the rule ends keeps all it wrote; another, late stopping's best
    cut (or all of it without one)."""
    gen = line["generated"]
    end = repeat_end(gen, n)
    cuts = list(zip(line["cut_at"], line["cut_score"]))
    if end is not None:
        cuts = []
        gen = gen[: end + 1]
    best = None
    for at, sc in cuts:  # the first cut wins ties, as late_stop.c
        if best is None or sc > best[1]:
            best = (at, sc)
    text = gen[: best[0]] if best else gen
    cut = text.find("})")
    return (text[:cut] if cut >= 0 else text), len(gen)


def part_ok(p):
    return (p.strip(SPACE) != "" and len(p.encode()) <= 1024 and
            not any(ord(c) < 0x20 or ord(c) == 0x7F for c in p))


def parse_items(answer):
    """The well-formed, distinct facts of one sentence (parse_items)."""
    facts = []
    for item in answer.split(";"):
        item = item.strip(" \t\r\n")
        if not item:
            continue
        parts = item.split(">>")
        if len(parts) != 3:
            continue
        t = tuple(p.strip(" \t") for p in parts)
        if all(part_ok(p) for p in t) and t not in facts:
            facts.append(t)
    return facts


def same_name(a, b):
    return "".join(a.split()).lower() == "".join(b.split()).lower()


def score(doc, props, facts, c):
    """extract_score_document: facts deduplicated by text, gold by (h, r, t)."""
    names = [[m["name"] for m in v] for v in doc["vertexSet"]]
    labels = [(lab["h"], props.get(lab["r"], lab["r"]), lab["t"]) for lab in doc["labels"]]

    def matches(h, r, t, f):
        return (r == f[1] and any(same_name(x, f[0]) for x in names[h]) and
                any(same_name(x, f[2]) for x in names[t]))

    distinct = list(dict.fromkeys(facts))
    c["facts"] += len(distinct)
    c["correct"] += sum(any(matches(*lab, f) for lab in labels) for f in distinct)
    gold = list(dict.fromkeys(labels))
    c["gold"] += len(gold)
    c["recalled"] += sum(any(matches(*lab, f) for f in facts) for lab in gold)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("docred")
    ap.add_argument("--repeats", type=int, nargs="+", default=[0, 1, 2, 3, 4, 6])
    ap.add_argument("--props", default=os.path.join(os.path.dirname(__file__), "..", "data",
                                                    "wikidata_props_en.json"))
    a = ap.parse_args()
    docs = json.load(open(a.docred))
    props = json.load(open(a.props))
    lines = [json.loads(x) for x in open(a.trace)]
    if any("generated" not in x for x in lines):
        sys.exit(f"{a.trace}: no 'generated' text (a trace from memllm eval extract --trace)")
    print("repeats facts correct recalled gold precision recall f1 chars_generated")
    for n in a.repeats:
        c = dict(facts=0, correct=0, recalled=0, gold=0)
        chars = 0
        by_doc = {}
        for x in lines:
            text, length = kept_text(x, n)
            chars += length
            by_doc.setdefault(x["doc"], []).extend(parse_items(text))
        for d, facts in by_doc.items():
            score(docs[int(d)], props, facts, c)
        p = c["correct"] / c["facts"] if c["facts"] else 0.0
        r = c["recalled"] / c["gold"] if c["gold"] else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        print(f"{n} {c['facts']} {c['correct']} {c['recalled']} {c['gold']} "
              f"{p:.4f} {r:.4f} {f1:.4f} {chars}")


if __name__ == "__main__":
    main()

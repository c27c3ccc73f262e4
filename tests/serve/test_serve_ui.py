#!/usr/bin/env python3
"""memllm serve's page (GET /ui) driven in headless Chromium (Debian's
chromium and chromium-driver, through PyPI's selenium), as a person would use
it, against the real binary on a random loopback port with a memory of a
held-out Re-DocRED document's facts:

  - the key typed into the page; the models listed;
  - a text completion with the MR adapter and "read the memory" ticked shows
    the text the API gives for the same request and one trace line per read,
    with its query, answers and provenance; unticked, the API's text without
    memory and no trace;
  - an entity searched by name shows its facts, each with its provenance
    (source, sentence, time) as the API lists them;
  - add, replace and delete (the row's button) go through the page as edit
    batches, listed with their undo; the memory API then returns what each
    left, and undoing the delete, then the replace, restores the memory;
  - with a read-only key the page's edit shows the 403 and changes nothing;
  - a screenshot of the page (PNG) is saved where the first argument says.

    test_serve_ui.py SCREENSHOT.png
Skipped (exit 77) without chromium, chromedriver or selenium
(deploy/install-deps.sh installs them). Environment: as test_serve.py.
"""
import datetime
import os
import re
import shutil
import struct
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_serve import MR, Server, call, check, failures  # noqa: E402
from test_serve_memory_api import setup  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:
    webdriver = None

WAIT = 120  # seconds for anything the page waits on the model for


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to
    # start; the page is our own, on loopback.
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,2200"):
        o.add_argument(a)
    return webdriver.Chrome(service=Service(DRIVER), options=o)


class Page:
    def __init__(self, driver, url):
        self.d = driver
        self.d.get(url + "/ui")

    def el(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def all(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def type(self, css, text):
        e = self.el(css)
        e.clear()
        e.send_keys(text)

    def wait(self, what, cond):
        try:
            return WebDriverWait(self.d, WAIT, poll_frequency=0.1).until(lambda d: cond())
        except TimeoutException:
            check(False, f"the page never showed {what}; status {self.el('#status').text!r}, "
                  f"log {self.el('#log').text[-500:]!r}")
            return None

    def set_key(self, key):
        self.type("#key", key + Keys.TAB)  # the change event reloads the models

    def send(self, text):
        """Sends text; returns (the answer's text, the trace lines it added)."""
        lines = len(self.all("#log > div"))
        self.type("#prompt", text)
        self.el("#send").click()
        # The log gets the user's line, then the answer's, which ends as
        # "done" (or "error").
        self.wait("the answer", lambda: len(self.all("#log > div")) >= lines + 2 and re.search(
            r"\b(done|error)\b", self.all("#log > div")[lines + 1].get_attribute("class")))
        added = self.all("#log > div")[lines + 1:]
        out = added[0].get_attribute("textContent") if added else None
        return out, [t.get_attribute("textContent") for t in added if "trace" in
                     t.get_attribute("class")]

    def batches(self):
        return self.all("#batches li.batch")

    def edit(self, op, s, r, o):
        n = len(self.batches())
        Select(self.el("#edit-op")).select_by_value(op)
        self.type("#edit-s", s)
        self.type("#edit-r", r)
        self.type("#edit-o", o)
        self.el("#edit-apply").click()
        self.wait(f"the batch of {op} {s}>>{r}>>{o}", lambda: len(self.batches()) > n)
        return self.batches()[0].get_attribute("data-id")

    def rows(self):
        return [tuple(td.text for td in row.find_elements(By.TAG_NAME, "td")[:4])
                for row in self.all("#entities tr.fact")]


def utc(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


def prov_text(provs):
    """The page's rendering of a provenance list (ui.html provenance())."""
    return "; ".join(p["source"] + (f" #{p['sentence']}" if p["sentence"] >= 0 else "")
                     + (f", {utc(p['time_ms'])}" if p["time_ms"] else "") for p in provs)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: test_serve_ui.py SCREENSHOT.png")
    missing = [n for n, v in (("chromium", CHROMIUM), ("chromedriver", DRIVER),
                              ("selenium", webdriver)) if not v]
    if missing:
        print(f"test_serve_ui: SKIP: no {', '.join(missing)} here "
              "(deploy/install-deps.sh installs Debian's chromium and chromium-driver, PyPI's "
              "selenium)")
        sys.exit(77)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="memllm-serve-ui-") as tmp:
        prompt, facts = setup(tmp)
        keys = os.path.join(tmp, "keys")
        with open(keys, "w") as f:
            f.write("sk-rw\nsk-ro read-only\n")
        s = Server("--adapter", f"mr={MR}", "--memory", os.path.join(tmp, "gold"),
                   "--api-keys", keys)
        auth = {"Authorization": "Bearer sk-rw"}

        def entity(name):
            st, _, b = call(s.url + "/v1/memory/entities/" + urllib.parse.quote(name),
                            headers=auth)
            check(st == 200, f"GET entity {name}: {st} {b}")
            return b["entities"][0]["facts"] if st == 200 else []

        def triples(name):
            return {(f["subject"], f["relation"], f["object"]) for f in entity(name)}

        d = browser()
        try:
            p = Page(d, s.url)
            p.set_key("sk-rw")
            p.wait("the models", lambda: len(p.all("#model option")) == 2)
            Select(p.el("#model")).select_by_value("mr")
            Select(p.el("#mode")).select_by_value("text")
            p.type("#max", "40")
            p.type("#temperature", "0")

            # With the memory read: the API's text and its reads, line by line.
            req = {"model": "mr", "prompt": prompt, "max_tokens": 40, "temperature": 0}
            st, _, want = call(s.url + "/v1/completions", {**req, "memory": True}, headers=auth)
            check(st == 200, f"the API's memory completion: {st} {want}")
            want = want["choices"][0]
            p.el("#memory").click()
            text, traces = p.send(prompt)
            check(text == want["text"], f"the page shows {text!r}, the API {want['text']!r}")
            reads = want["memllm"]["reads"]
            check(reads and len(traces) == len(reads),
                  f"{len(traces)} trace lines for {len(reads)} reads: {traces}")
            answered = 0
            for line, rd in zip(traces, reads):
                for q in rd["queries"]:
                    check(f"read {q['query']} -> " in line, f"query {q['query']} not in {line!r}")
                    for a in q["answers"]:
                        answered += 1
                        check(f"{a['text']} (score {a['score']:.2f}; {prov_text(a['provenance'])})"
                              in line, f"answer {a} not shown in {line!r}")
            check(answered > 0, f"no read answered from the memory: {reads}")

            # Without: the API's text, no trace.
            st, _, plain = call(s.url + "/v1/completions", req, headers=auth)
            p.el("#memory").click()
            text, traces = p.send(prompt)
            check(text == plain["choices"][0]["text"] and not traces,
                  f"memory off: {text!r} {traces}, the API {plain['choices'][0]['text']!r}")

            # An entity's facts with their provenance, as the API lists them.
            subject = facts[0].split(">>")[0]
            p.type("#entity", subject)
            p.el("#entity-search").click()
            p.wait("the entity's facts", lambda: "named" in p.el("#status").text)
            api_rows = {(f["subject"], f["relation"], f["object"], prov_text(f["provenance"]))
                        for f in entity(subject)}
            check(api_rows and set(p.rows()) == api_rows,
                  f"the page lists {sorted(p.rows())}, the API {sorted(api_rows)}")

            # Edits through the page, each an undoable batch.
            added = p.edit("add", subject, "test relation", "Atlantis")
            p.wait("the added fact", lambda: (subject, "test relation", "Atlantis") in
                   [r[:3] for r in p.rows()])
            facts_now = {(f["object"], f["provenance"][0]["source"]) for f in entity(subject)
                         if f["relation"] == "test relation"}
            check(facts_now == {("Atlantis", f"edit:{added}")},
                  f"after the page's add the API has {facts_now}")
            replaced = p.edit("replace", subject, "test relation", "Lemuria")
            check({t[2] for t in triples(subject) if t[1] == "test relation"} == {"Lemuria"},
                  f"after replace: {triples(subject)}")
            p.wait("the replaced fact", lambda: (subject, "test relation", "Lemuria") in
                   [r[:3] for r in p.rows()])
            row = [r for r in p.all("#entities tr.fact")
                   if r.find_elements(By.TAG_NAME, "td")[2].text == "Lemuria"]
            n = len(p.batches())
            row[0].find_element(By.CSS_SELECTOR, "button.delete").click()
            p.wait("the delete's batch", lambda: len(p.batches()) > n)
            deleted = p.batches()[0].get_attribute("data-id")
            check(not [t for t in triples(subject) if t[1] == "test relation"],
                  f"after the row's delete: {triples(subject)}")
            p.wait("the row gone", lambda: (subject, "test relation", "Lemuria") not in
                   [r[:3] for r in p.rows()])

            def undo(batch):
                item = [b for b in p.batches() if b.get_attribute("data-id") == batch][0]
                item.find_element(By.CSS_SELECTOR, "button.undo").click()
                p.wait(f"batch {batch} undone",
                       lambda: item.find_elements(By.CSS_SELECTOR, ".undone"))

            undo(deleted)
            check({t[2] for t in triples(subject) if t[1] == "test relation"} == {"Lemuria"},
                  f"after undoing the delete: {triples(subject)}")
            undo(replaced)
            check({t[2] for t in triples(subject) if t[1] == "test relation"} == {"Atlantis"},
                  f"after undoing the replace: {triples(subject)}")
            p.wait("Atlantis back on the page", lambda: (subject, "test relation", "Atlantis") in
                   [r[:3] for r in p.rows()])

            # A read-only key: the page says 403, the memory is unchanged.
            p.set_key("sk-ro")
            before = triples(subject)
            n = len(p.batches())
            Select(p.el("#edit-op")).select_by_value("add")
            p.type("#edit-o", "Mu")
            p.el("#edit-apply").click()
            p.wait("the refusal", lambda: "403" in p.el("#status").text)
            check("read-only" in p.el("#status").text and len(p.batches()) == n
                  and "error" in p.el("#status").get_attribute("class"),
                  f"read-only edit: {p.el('#status').text!r}")
            check(triples(subject) == before, f"a read-only edit changed the memory: "
                  f"{triples(subject) ^ before}")

            d.save_screenshot(sys.argv[1])
        finally:
            d.quit()
            rc, log = s.stop()
        check(rc == 0, f"memllm serve exited {rc}: {log[-2000:]}")
    with open(sys.argv[1], "rb") as f:
        png = f.read()
    ok = png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    w, h = struct.unpack(">II", png[16:24]) if ok else (0, 0)
    check(ok and w >= 1000 and h >= 1000 and len(png) > 20000,
          f"the screenshot {sys.argv[1]}: {w}x{h}, {len(png)} bytes")
    if failures:
        sys.exit(f"test_serve_ui.py: {len(failures)} check(s) failed")
    print(f"test_serve_ui.py: all checks passed in {time.time() - t0:.1f} s; screenshot "
          f"{sys.argv[1]} ({w}x{h})")


if __name__ == "__main__":
    main()

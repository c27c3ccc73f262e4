#!/usr/bin/env python3
"""memllm serve over HTTPS (--tls-cert, --tls-key) with a certificate made
for the test: the real `openai` client trusting it completes a request and
/health answers; a client that does not trust it is refused by its own
verification; plain HTTP on the port gets no HTTP answer; and bad TLS
options (one without the other, a missing file, a file that is not PEM)
stop memllm serve with an error naming the option and the file.

    test_serve_tls.py
Environment (set by ctest): as tests/serve/test_serve.py. Needs openssl.
"""
import http.client
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.request

import openai

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_serve import BIN, MODEL, Server, check, failures  # noqa: E402


def refused(args, want):
    r = subprocess.run([BIN, "serve", "--model", MODEL, "--port", "0", *args],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode != 0 and all(w in r.stderr for w in want),
          f"memllm serve {' '.join(args)}: exit {r.returncode}, stderr {r.stderr!r}, want {want}")


def main():
    if not shutil.which("openssl"):
        print("test_serve_tls: SKIP: no openssl to make a certificate")
        sys.exit(77)
    with tempfile.TemporaryDirectory(prefix="memllm-serve-tls-") as tmp:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=memllm test", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        s = Server("--tls-cert", cert, "--tls-key", key)
        try:
            check(s.url.startswith("https://"), f"listening on {s.url}, not https")
            ctx = ssl.create_default_context(cafile=cert)
            with urllib.request.urlopen(s.url + "/health", context=ctx, timeout=60) as r:
                check(r.status == 200, f"GET /health over HTTPS: {r.status}")
            client = openai.OpenAI(base_url=s.url + "/v1", api_key="none", max_retries=0,
                                   http_client=openai.DefaultHttpxClient(verify=cert, timeout=120))
            c = client.completions.create(model="SmolLM2-135M-Instruct.Q4_1",
                                          prompt="The capital of France is", max_tokens=8,
                                          temperature=0)
            check(c.choices[0].text and c.usage.completion_tokens > 0,
                  f"a completion over HTTPS: {c}")
            try:
                urllib.request.urlopen(s.url + "/health", timeout=60,
                                       context=ssl.create_default_context())
                check(False, "a client that does not trust the certificate got an answer")
            except urllib.error.URLError as e:
                check(isinstance(e.reason, ssl.SSLCertVerificationError),
                      f"an untrusting client failed otherwise: {e}")
            plain = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
            try:
                plain.request("GET", "/health")
                got = plain.getresponse().status
            except (OSError, http.client.HTTPException):
                got = None
            check(got is None, f"plain HTTP on the HTTPS port got an answer: {got}")
        finally:
            rc, log = s.stop()
        check(rc == 0, f"memllm serve exited {rc}: {log[-2000:]}")
        refused(["--tls-cert", cert], ["--tls-cert", "--tls-key"])
        refused(["--tls-cert", os.path.join(tmp, "none.pem"), "--tls-key", key],
                ["--tls-cert", "none.pem"])
        notpem = os.path.join(tmp, "not.pem")
        with open(notpem, "w") as f:
            f.write("hello\n")
        refused(["--tls-cert", cert, "--tls-key", notpem], ["--tls-key", "not.pem", "PEM"])
    if failures:
        sys.exit(f"test_serve_tls.py: {len(failures)} check(s) failed")
    print("test_serve_tls.py: all checks passed")


if __name__ == "__main__":
    main()

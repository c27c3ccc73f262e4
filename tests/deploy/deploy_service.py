#!/usr/bin/env python3
"""deploy/install-service.sh and the systemd unit it writes, as far as a
machine without systemd running can try them: the unit passes
`systemd-analyze verify` with no complaint (where systemd-analyze is
installed), and its ExecStart, run with the unit's Environment as systemd
would run it, serves (GET /health answers 200) and, on the unit's
KillSignal, drains and exits 0 within its TimeoutStopSec.

Environment (set by ctest): MEMLLM_BIN, MEMLLM_MODELS_DIR.
"""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODEL = os.path.join(os.environ["MEMLLM_MODELS_DIR"], "SmolLM2-135M-Instruct.Q4_1.gguf")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fail(what):
    sys.exit(f"test_deploy_service: {what}")


def main():
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([os.path.join(ROOT, "deploy", "install-service.sh"), "--unit-dir", tmp,
                            "--", "--model", MODEL, "--port", str(port), "--threads", "2",
                            "--drain-seconds", "20"], capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"install-service.sh exited {r.returncode}: {r.stderr}")
        unit_path = os.path.join(tmp, "memllm-serve.service")
        unit = open(unit_path).read()
        if re.search(r"@[A-Z_]+@", unit):
            fail(f"a field left unfilled in the unit:\n{unit}")
        if shutil.which("systemd-analyze"):
            v = subprocess.run(["systemd-analyze", "verify", unit_path], capture_output=True,
                               text=True)
            if v.returncode != 0 or v.stdout.strip() or v.stderr.strip():
                fail(f"systemd-analyze verify: exit {v.returncode}: {v.stdout}{v.stderr}")
        else:
            print("test_deploy_service: no systemd-analyze here: the unit's syntax is not verified")
        fields = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
        env = dict(os.environ)
        for assignment in re.findall(r"^Environment=(.*)$", unit, re.M):
            key, _, value = assignment.partition("=")
            env[key] = value
        argv = shlex.split(fields["ExecStart"])
        if os.path.realpath(argv[0]) != os.path.realpath(os.environ["MEMLLM_BIN"]):
            fail(f"ExecStart runs {argv[0]}, not {os.environ['MEMLLM_BIN']}")
        stop_seconds = int(fields["TimeoutStopSec"])
        kill = getattr(signal, fields["KillSignal"])
        proc = subprocess.Popen(argv, cwd=fields["WorkingDirectory"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            if f"listening on http://127.0.0.1:{port}" not in line:
                fail(f"the unit's command did not start serving: {line!r} {proc.stderr.read()}")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as h:
                if h.status != 200:
                    fail(f"GET /health: {h.status}")
            t0 = time.time()
            proc.send_signal(kill)
            rc = proc.wait(timeout=stop_seconds)
            if rc != 0:
                fail(f"on {fields['KillSignal']} it exited {rc}: {proc.stderr.read()}")
            print(f"test_deploy_service: served on port {port}, stopped in "
                  f"{time.time() - t0:.1f} s (TimeoutStopSec {stop_seconds})")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()

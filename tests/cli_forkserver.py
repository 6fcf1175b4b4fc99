"""Run many ``mimviewer`` command lines as separate processes without paying torch's import each time.

A server process imports mimviewer and torch once, then forks one child per command line.
The child is a real process with its own exit status, its own stderr file and an
address-space limit (``RLIMIT_AS``); it runs the same ``mimviewer.cli.main`` that
``python -m mimviewer`` runs, and an uncaught exception prints its traceback and exits 1,
as the interpreter would. The parent reads the child's peak memory from ``wait4``.

Protocol: one JSON request per line on stdin, ``{"argv", "cwd", "env", "as_bytes"}``; one
JSON reply per line on stdout, ``{"code", "stdout", "stderr", "peak", "seconds"}``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SERVER = r"""
import json, os, resource, sys, time, traceback
os.environ["OMP_NUM_THREADS"] = "1"
import torch
torch.set_num_threads(1)
import importlib, pkgutil
import mimviewer
# Every Qt-free module, and the readers' libraries, imported before forking: a child that runs
# as an ordinary user (the permission tests) may not be allowed to read the checkout or its
# virtualenv (CI's fresh clone can sit in a 0700 temporary folder), so it must import nothing.
for _module in pkgutil.walk_packages(mimviewer.__path__, "mimviewer."):
    if not _module.name.startswith("mimviewer.ui") and not _module.name.endswith("__main__"):
        importlib.import_module(_module.name)
import cv2, h5py, imageio.v2, imageio.v3, safetensors.torch
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
with open("/proc/self/status") as f:
    vm = int(f.read().split("VmSize:")[1].split()[0]) * 1024
print(json.dumps({"baseline": baseline, "vm": vm}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    out_dir = request["out_dir"]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(request["cwd"])
            os.environ.update(request.get("env", {}))
            if request.get("as_bytes"):
                resource.setrlimit(resource.RLIMIT_AS, (request["as_bytes"], request["as_bytes"]))
            if request.get("cpu_seconds"):  # a runaway is stopped (SIGXCPU), which fails its test
                resource.setrlimit(resource.RLIMIT_CPU, (request["cpu_seconds"], request["cpu_seconds"] + 5))
            if request.get("uid") is not None:  # root reads any file: be an ordinary user to test permissions
                os.setgid(request["uid"])
                os.setuid(request["uid"])
            for fd, name in ((1, "stdout"), (2, "stderr")):
                target = os.path.join(out_dir, f"{request['tag']}.{name}")
                handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(handle, fd)
            sys.stdin = open(os.devnull)
            try:
                code = mimviewer.cli.main(request["argv"])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    _, status, usage = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    reply = {"code": code, "peak": usage.ru_maxrss * 1024, "seconds": time.perf_counter() - started}
    for name in ("stdout", "stderr"):
        with open(os.path.join(out_dir, f"{request['tag']}.{name}"), errors="replace") as f:
            reply[name] = f.read()
    print(json.dumps(reply), flush=True)
"""


class ForkServer:
    """``run(argv, cwd)`` -> the child's exit code, output, peak memory (bytes) and wall time."""

    def __init__(self):
        # Outputs go to a folder any user may write (a case may run as "nobody"), removed at close.
        self.io = Path(tempfile.mkdtemp(prefix="mimviewer-fork-"))
        self.io.chmod(0o777)
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", "QT_QPA_PLATFORM": "offscreen"},
        )
        hello = json.loads(self.process.stdout.readline())
        self.baseline, self.vm = hello["baseline"], hello["vm"]
        self.count = 0

    def run(self, argv: list[str], cwd: Path, **options) -> dict:
        """``options``: env (dict), as_bytes (RLIMIT_AS), cpu_seconds (RLIMIT_CPU), uid (run as)."""
        out_dir = self.io
        self.count += 1
        request = {"argv": argv, "cwd": str(cwd), "out_dir": str(out_dir), "tag": self.count, **options}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)
        shutil.rmtree(self.io, ignore_errors=True)

"""`emp-kan bench --scheduler` against a real Dask cluster of separate processes.

A user with a cluster starts ``dask scheduler`` on one machine and ``dask worker`` on others and
points the bench at the scheduler. Here all of it runs on 127.0.0.1: one scheduler and a
single-threaded worker, killed while tasks are running; a second worker joins after. The bench
must still finish with every task exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

DASK = Path(sys.executable).with_name("dask")
EQUATIONS = "8,10,16,25,37,41"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(argv: list[str], log: Path) -> subprocess.Popen:
    with log.open("wb") as fh:
        return subprocess.Popen(
            argv, stdout=fh, stderr=subprocess.STDOUT, cwd=log.parent, start_new_session=True
        )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _wait_for_workers(address: str, count: int, timeout: float = 120) -> None:
    from dask.distributed import Client

    deadline = time.time() + timeout
    with Client(address, timeout=timeout) as client:
        while len(client.scheduler_info()["workers"]) < count:
            if time.time() > deadline:
                raise TimeoutError(f"{count} workers did not join {address}")
            time.sleep(0.2)


@pytest.mark.skipif(not DASK.exists(), reason="the dask command is installed with emp-kan")
def test_a_bench_on_a_real_cluster_survives_a_lost_worker(tmp_path):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [
        _start(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            tmp_path / "scheduler.log",
        )
    ]

    def start_worker(name: str) -> subprocess.Popen:
        (tmp_path / name).mkdir()
        return _start(
            [
                str(DASK),
                "worker",
                address,
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--name",
                name,
                "--local-directory",
                str(tmp_path / name),
            ],
            tmp_path / name / "worker.log",
        )

    try:
        # One worker at first, so that the bench cannot finish before it is lost, however
        # fast the machine: the second joins only after the first is killed.
        procs.append(start_worker("a"))
        _wait_for_workers(address, 1)
        out = tmp_path / "bench"
        results = out / "results.jsonl"
        bench = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "emp_kan.app.cli",
                "bench",
                "--equations",
                EQUATIONS,
                "--methods",
                "emp",
                "--scheduler",
                address,
                "--out",
                str(out),
                "--samples",
                "40",
                "--steps",
                "8",
                "--round-steps",
                "2",
                "--rounds",
                "1",
                "--no-progress",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 300
        while time.time() < deadline and bench.poll() is None:
            if results.exists() and results.read_text().count("\n") >= 1:
                break
            time.sleep(0.05)
        _stop(procs[1])  # worker "a" dies, most likely with its next task half done
        done_by_a = results.read_text().count("\n") if results.exists() else 0
        assert 1 <= done_by_a < len(EQUATIONS.split(",")), "worker a did not start or did all"
        procs.append(start_worker("b"))
        _, err = bench.communicate(timeout=600)
        assert bench.returncode == 0, err[-2000:]
        keys = [json.loads(line)["key"] for line in results.read_text().splitlines()]
        expected = [f"{e}:emp:0:0" for e in EQUATIONS.split(",")]  # noise level 0
        assert sorted(keys) == sorted(expected)  # every task, each exactly once
        assert all("error" not in json.loads(line) for line in results.read_text().splitlines())
    finally:
        for proc in reversed(procs):
            _stop(proc)

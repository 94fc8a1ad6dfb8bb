"""Executors: bounded in flight, objects as well as names, lost workers named, not hung."""

import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import psutil
import pytest

import tilewise as tw
from tilewise.executors import EXECUTORS, Executor, WorkerLost, get_executor, processes


def square(x):
    time.sleep(0.05)
    return x * x


def dies(x, how):
    if x == 3:
        if how == "exit":
            os._exit(3)
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "segfault":
            ctypes.string_at(0)
    time.sleep(0.3 if x > 3 else 0.01)
    return x


def pid(job):
    return os.getpid()


class Dies:
    def __init__(self, how):
        self.how = how

    def __call__(self, x):
        return dies(x, self.how)


def children():
    """Worker processes (not multiprocessing's resource tracker, which lives on)."""
    found = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if not any("resource_tracker" in part for part in p.cmdline()):
                found.add(p.pid)
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize("how, detail", [("exit", "exited with code 3"),
                                         ("kill", "killed by SIGKILL"),
                                         ("segfault", "killed by SIGSEGV")])
def test_a_worker_that_dies_is_a_worker_lost_naming_the_job(how, detail):
    processes.shutdown()  # workers started by earlier tests live on: end them first
    before = children()
    runner = get_executor("processes", 2)
    got = []
    with pytest.raises(WorkerLost) as raised:
        for _job, result in runner.run(Dies(how), iter(range(8)), in_flight=2):
            got.append(result)
    assert raised.value.executor == "processes" and 3 in raised.value.jobs
    assert detail in raised.value.detail
    assert got and set(got) <= {0, 1, 2}  # results delivered before the loss stand
    deadline = time.monotonic() + 10
    while children() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not children() - before  # no worker left behind


def test_a_worker_killed_from_outside_is_a_worker_lost():
    processes.shutdown()
    runner = get_executor("processes", 2)
    before = children()
    results = runner.run(square, iter(range(200)), in_flight=2)
    next(results)
    victim = sorted(children() - before)[0]
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(WorkerLost, match="processes"):
        for _ in results:
            pass


def test_at_most_in_flight_jobs_run_and_are_pulled_whatever_the_pool():
    running, peak, lock = 0, 0, threading.Lock()

    def work(job):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return job

    pulled = []

    def jobs():
        for i in range(60):
            pulled.append(i)
            yield i

    results = get_executor("threads", 4).run(work, jobs(), in_flight=2)
    first = next(results)
    assert len(pulled) <= 3  # two submitted, and one more once a slot was free
    assert sorted([first[1], *(r for _, r in results)]) == list(range(60))
    assert peak <= 2  # a pool of 4 threads, bounded by in_flight, not by the pool


def test_an_executor_object_is_used_as_given_and_reused():
    class Reversed(Executor):
        name = "reversed"
        calls = 0

        def run(self, work, jobs, in_flight):
            type(self).calls += 1
            for job in reversed(list(jobs)):
                yield job, work(job)

    runner = Reversed(1)
    a = np.arange(50.0).reshape(5, 10)
    for _ in range(2):
        got = tw.map(np.sqrt, tw.open(a)).compute(executor=runner, tile=2)
        np.testing.assert_array_equal(got, np.sqrt(a))
    assert Reversed.calls == 2
    with pytest.raises(tw.ParameterError, match="workers=3 differs from the 1 workers"):
        tw.map(np.sqrt, tw.open(a)).compute(executor=runner, workers=3)


def test_capabilities_are_declared_not_inferred():
    assert EXECUTORS["processes"].capabilities.pickles_work
    assert EXECUTORS["processes"].capabilities.process_per_worker
    assert not EXECUTORS["threads"].capabilities.pickles_work
    assert not any(vars(EXECUTORS["serial"].capabilities).values())


def test_worker_processes_are_started_once_and_reused_by_later_runs():
    processes.shutdown()
    runner = get_executor("processes", 2)
    first = dict(runner.run(pid, iter(range(8)), in_flight=2)).values()
    pids = processes.worker_pids(2)
    assert set(first) <= set(pids) and len(pids) == 2
    second = dict(get_executor("processes", 2).run(pid, iter(range(8)), in_flight=2))
    assert set(second.values()) <= set(pids)  # the same processes, not new ones
    processes.shutdown()
    assert not children() & set(pids)


def test_a_script_without_a_main_guard_fails_clearly_instead_of_hanging(tmp_path):
    # Each spawned worker imports the script again, which asks for workers of its own.
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        import tilewise as tw
        image = tw.map(lambda a: a + 1, tw.open(np.zeros((64, 64), np.float32)), margin=1)
        image.compute(executor="processes", workers=2, tile=32)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=240, cwd=tmp_path)
    assert done.returncode != 0
    assert "UnguardedMainError" in done.stderr
    assert "if __name__ == '__main__':" in done.stderr.splitlines()[-1]

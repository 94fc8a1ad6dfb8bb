import os

import pytest
from hypothesis import settings

# Wall-clock deadlines make property tests flaky on a busy 2-core CI machine; time is
# measured by the benchmarks instead.
settings.register_profile("tilewise", deadline=None)
settings.load_profile("tilewise")

DATA = os.environ.get(
    "TILEWISE_DATA",
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"),
)


def data_path(*parts: str) -> str:
    """A file of the shared real-data folder, or a clean skip when it is absent."""
    path = os.path.join(DATA, *parts)
    if not os.path.exists(path):
        pytest.skip(f"real data {os.path.join(*parts)} not found under {DATA}")
    return path


def above_resident(extra: str) -> int:
    """A memory budget of `extra` on top of what this test process and its workers hold now:
    `memory=` bounds the run's whole process tree, and a test session's interpreter grows."""
    from dask.utils import parse_bytes

    from tilewise.run import resident

    return resident.tree() + parse_bytes(extra)


@pytest.fixture(scope="module")
def dask_client():
    """A real LocalCluster of two single-threaded worker processes on loopback, started once
    per test module that asks for it."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


def launch_child(folder, *args):
    """`child.py` in `folder` run in a new process that imports the tilewise under test
    (whatever PYTHONPATH says), its stderr kept; for tests that kill a run and resume it."""
    import subprocess
    import sys

    import tilewise

    src = os.path.dirname(os.path.dirname(tilewise.__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "child.py", *map(str, args)], cwd=folder, env=env,
                            stderr=subprocess.PIPE, text=True)


def tiles_journaled(path):
    """How many tiles the journal at `path` records (0 before it exists)."""
    try:
        return sum(line.isdigit() for line in path.read_text().split("\n"))
    except FileNotFoundError:
        return 0

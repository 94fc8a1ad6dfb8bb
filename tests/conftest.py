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

"""Every Python block of docs/architecture.md runs as written, each in a fresh interpreter."""

import pathlib
import re
import subprocess
import sys

import pytest

DOC = pathlib.Path(__file__).parent.parent / "docs" / "architecture.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_page_has_its_examples():
    assert len(BLOCKS) == 3  # an op, a format, an executor


@pytest.mark.parametrize("code", BLOCKS, ids=["op", "format", "executor"])
def test_example_runs(tmp_path, code):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr

"""With no `executor=`, threads or processes are chosen from measurements, and `plan` says why."""

import numpy as np
import zarr
from conftest import above_resident
from scipy import ndimage

import tilewise as tw
from tilewise.executors import processes
from tilewise.run import plan
from tilewise.summary import describe


def holds_the_gil(a):
    """SciPy's ndimage filters keep the GIL for part of their run: two threads share a 5-pixel
    uniform filter on 512^2 at ~1.5x, so processes win a long run."""
    return ndimage.uniform_filter(a, size=5)


def executor_line(planned) -> str:
    return next(line for line in describe(planned) if line.startswith("executor"))


def test_a_small_run_keeps_threads_without_measuring_them(tmp_path):
    img = tw.map(np.negative, tw.open(np.ones((300, 300), "float32")), margin=1)
    planned = plan(img, tmp_path / "x.zarr", workers=2)
    assert planned.runner.name == "threads"
    assert "of computing, too little to repay" in executor_line(planned)


def test_a_long_run_of_an_op_that_holds_the_gil_gets_processes(tmp_path):
    """65536 x 65536 pixels of a GIL-holding filter: a minute of computing that threads could
    not share. Planning reads only the probe's pixels of the (constant) input."""
    zarr.create_array(tmp_path / "in.zarr", shape=(65536, 65536), chunks=(512, 512),
                      dtype="float32", fill_value=1.0, dimension_names=["y", "x"])
    img = tw.map(holds_the_gil, tw.open(str(tmp_path / "in.zarr")), margin=2)
    planned = plan(img, tmp_path / "out.zarr", workers=2, memory=above_resident("3GiB"))
    line = executor_line(planned)
    assert planned.runner.name == "processes", line
    assert "two threads computed" in line and "processes would be about" in line
    processes.shutdown()


def test_processes_are_not_chosen_when_their_interpreters_crowd_the_budget(tmp_path):
    zarr.create_array(tmp_path / "in.zarr", shape=(65536, 65536), chunks=(512, 512),
                      dtype="float32", fill_value=1.0, dimension_names=["y", "x"])
    img = tw.map(holds_the_gil, tw.open(str(tmp_path / "in.zarr")), margin=2)
    planned = plan(img, tmp_path / "out.zarr", workers=2, memory=above_resident("160MiB"))
    assert planned.runner.name == "threads"
    assert "but worker processes do not fit the memory budget" in executor_line(planned)

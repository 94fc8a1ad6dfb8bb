"""Pipeline files through the command line: run, plan, ops, and every validation error."""

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import DATA, data_path

import tilewise as tw
from tilewise import library as ops


def tilewise(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "tilewise.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})})


def write(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def dem(tmp_path):
    a = np.random.default_rng(3).normal(0, 20, (90, 130)).cumsum(axis=1).astype("float32")
    np.save(tmp_path / "dem.npy", a)
    return a


USER_MODULE = """
import numpy as np
from scipy import ndimage


def local_range(a, *, size):
    return ndimage.maximum_filter(a, size=size) - ndimage.minimum_filter(a, size=size)


def explode(a, *, tile):
    if tile.index == (1, 1):
        raise ValueError("bad pixel")
    return a
"""


def test_run_with_builtins_and_a_user_function_matches_python(tmp_path, dem):
    write(tmp_path, "myfilters.py", USER_MODULE)
    pipeline = write(tmp_path, "p.yaml", """
        inputs:
          dem: dem.npy
        steps:
          smooth: {op: gaussian, input: dem, params: {sigma: 2}}
          bumps:
            function: myfilters:local_range
            margin: 3
            dtype: float32
            input: smooth
            params: {size: 7}
        outputs:
          smooth: out/smooth.zarr
          bumps: {path: out/bumps.tif, cmap: magma}
        run: {tile: 32}
        """)
    for executor in ("threads", "processes"):
        done = tilewise("run", pipeline, "--executor", executor, "--overwrite", "--preview")
        assert done.returncode == 0, done.stderr
        assert "tilewise tiles: 15/15 tiles (100%)" in done.stderr  # logged: not a terminal
        smooth = ndimage_gaussian(dem)
        np.testing.assert_array_equal(tw.compute(tw.open(tmp_path / "out" / "smooth.zarr")),
                                      smooth)
        sys.path.insert(0, str(tmp_path))
        try:
            import myfilters
        finally:
            sys.path.remove(str(tmp_path))
        np.testing.assert_array_equal(tw.compute(tw.open(tmp_path / "out" / "bumps.tif")),
                                      myfilters.local_range(smooth, size=7))
        assert (tmp_path / "out" / "bumps.png").exists()


def ndimage_gaussian(a):
    return tw.compute(ops.gaussian(tw.open(a), sigma=2), tile=a.shape)


def test_quiet_run_prints_nothing_and_a_rerun_resumes_or_refuses(tmp_path, dem):
    pipeline = write(tmp_path, "p.yaml", """
        inputs: {dem: dem.npy}
        steps: {m: {op: median, input: dem, params: {size: 3}}}
        outputs: {m: m.npy}
        """)
    done = tilewise("run", pipeline, "--quiet")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    again = tilewise("run", pipeline)  # complete, by the same pipeline: nothing to do
    assert again.returncode == 0
    assert re.search(r"already complete \(\d+ tiles, done by an earlier run\); nothing to do",
                     again.stdout)
    pipeline.write_text(pipeline.read_text().replace("size: 3", "size: 5"))
    changed = tilewise("run", pipeline, "--quiet")
    assert changed.returncode == 2
    assert "m.npy was begun by a different pipeline: parameter 'size' of op 'median' changed " \
        "from 3 to 5" in changed.stderr
    assert tilewise("run", pipeline, "--quiet", "--overwrite").returncode == 0


def test_a_failing_tile_exits_1_and_names_the_tile(tmp_path, dem):
    write(tmp_path, "myfilters.py", USER_MODULE)
    pipeline = write(tmp_path, "p.yaml", """
        inputs: {dem: dem.npy}
        steps: {boom: {function: "myfilters:explode", margin: 0, input: dem}}
        outputs: {boom: boom.tif}
        """)
    done = tilewise("run", pipeline, "--tile", "40", "--quiet")
    assert done.returncode == 1
    assert "op 'boom'" in done.stderr and "(1, 1)" in done.stderr and "bad pixel" in done.stderr
    assert "run the same command again to resume" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "boom.tif").exists()
    planned = tilewise("plan", pipeline, "--tile", "40")
    assert planned.returncode == 0, planned.stderr
    assert "journal    boom.tif: " in planned.stdout and " of 12 tiles done; run resumes them " \
        "unless --overwrite (tiles of 40 x 40)" in planned.stdout


def test_plan_explains_without_writing(tmp_path, dem):
    pipeline = write(tmp_path, "p.yaml", """
        inputs: {dem: dem.npy}
        steps:
          smooth: {op: gaussian, input: dem, params: {sigma: 1}}
          shade: {op: stretch, input: smooth}
        outputs: {shade: out/shade.zarr}
        """)
    done = tilewise("plan", pipeline, "--tile", "y=30,x=64", "--workers", "2",
                    "--memory", "512MiB")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "tiles      30 x 64  (3 x 3 = 9 tiles)" in out
    assert "halo       up to 4 pixels" in out and "read / written = 1." in out
    assert "per worker x 2" in out and "of the 512.00 MiB budget" in out
    assert "1. percentile of gaussian: up to 2 sweeps" in out
    assert "2. compute and write shade.zarr" in out
    assert "output shade.zarr: chunks 30 x 64" in out
    assert not (tmp_path / "out").exists()


def test_ops_lists_every_builtin_with_parameters_and_halo():
    done = tilewise("ops")
    assert done.returncode == 0
    for name in ops.BUILTINS:
        assert f"\n{name}  (" in "\n" + done.stdout
    assert "sigma: float | dict[str, float], required" in done.stdout
    assert "halo: int(truncate * sigma + 0.5), per axis" in done.stdout


def test_real_dem_by_dataset_name(tmp_path):
    data_path("dem", "srtm90.tif")
    pipeline = write(tmp_path, "p.yaml", """
        inputs: {dem: {dataset: srtm90}}
        steps: {shade: {op: hillshade, input: dem}}
        outputs: {shade: shade.tif}
        """)
    done = tilewise("run", pipeline, "--quiet", env={"TILEWISE_DATA": DATA})
    assert done.returncode == 0, done.stderr
    assert tw.open(tmp_path / "shade.tif").dtype == np.float32


BAD = [
    ("inputs: {dem: dem.npy}\nsteps: {s: {op: blur, input: dem}}\noutputs: {s: o.npy}\n",
     "line 2: steps.s.op: 'blur' is not a built-in op"),
    ("inputs: {dem: nothere.tif}\noutputs: {dem: o.npy}\n",
     "line 1: inputs.dem: input {tmp}/nothere.tif does not exist"),
    ("inputs: {dem: dem.npy}\nsteps:\n  s:\n    op: mean\n    input: dem\n"
     "    params: {sise: 3}\noutputs: {s: o.npy}\n",
     "line 6: steps.s.params.sise: op 'mean' has no parameter 'sise'; its parameters are "
     "size, mode"),
    ("inputs: {dem: dem.npy}\nsteps:\n  s:\n    op: mean\n    input: dem\n"
     "    params:\n      size: big\noutputs: {s: o.npy}\n",
     "line 7: steps.s.params.size: must be an integer, not 'big'"),
    ("inputs: {dem: dem.npy}\nsteps:\n  s: {op: mean, input: dem}\noutputs: {s: o.npy}\n",
     "line 3: steps.s.params: op 'mean' needs the parameter 'size'"),
    ("inputs: {dem: dem.npy}\nsteps:\n  a: {op: median, input: b, params: {size: 3}}\n"
     "  b: {op: median, input: a, params: {size: 3}}\noutputs: {a: o.npy}\n",
     "steps.a: is part of a cycle: a -> b -> a"),
    ("inputs: {dem: dem.npy}\nsteps:\n  a: {op: median, input: dme, params: {size: 3}}\n"
     "outputs: {a: o.npy}\n",
     "line 3: steps.a.input: names 'dme', which is neither an input nor a step"),
    ("inputs: {dem: dem.npy}\nsteps:\n  a: {op: median, input: dem, params: {size: 3}}\n"
     "outputs:\n  a: dem.npy\n",
     "line 5: outputs.a.path: {tmp}/dem.npy is the input 'dem'"),
    ("inputs: {dem: dem.npy}\nsteps:\n  a: {function: 'myfilters:local_range', input: dem}\n"
     "outputs: {a: o.npy}\n",
     "line 3: steps.a: needs 'margin'"),
    ("inputs: {dem: dem.npy}\nsteps:\n  a: {function: 'nomodule:f', margin: 1, input: dem}\n"
     "outputs: {a: o.npy}\n",
     "line 3: steps.a.function: cannot import module 'nomodule'"),
    ("inputs: {dem: dem.npy}\nsteps:\n  a: {function: 'myfilters:local_range', margin: -1,"
     " input: dem}\noutputs: {a: o.npy}\n",
     "steps.a: margin of op 'a' must be a non-negative integer, not -1"),
    ("inputs: {dem: dem.npy}\noutputs: {dem: o.npy}\ninputs: {x: y.npy}\n",
     "line 3: inputs: is given twice"),
    ("inputs: {dem: dem.npy\noutputs: {dem: o.npy}\n", "not valid YAML"),
    ("inputs: {dem: dem.npy}\noutputs: {dem: o.png}\n",
     "line 2: outputs.dem.path: "),
    ("inputs: {dem: dem.npy}\nsteps: {}\noutputs: {dem: o.npy}\nrun: {workers: two}\n",
     "line 4: run.workers: has the wrong type"),
    ("inputs: {dem: dem.npy}\nouputs: {dem: o.npy}\n",
     "line 2: ouputs: is not a known key here"),
]


@pytest.mark.parametrize("text,message", BAD, ids=range(len(BAD)))
def test_bad_pipeline_files_exit_2_naming_key_path_and_line(tmp_path, dem, text, message):
    write(tmp_path, "myfilters.py", USER_MODULE)
    pipeline = write(tmp_path, "p.yaml", text)
    for command in ("run", "plan"):
        done = tilewise(command, pipeline)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"tilewise: {pipeline}")
        assert message.format(tmp=tmp_path) in done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["dem.npy", "myfilters.py", "p.yaml"]


def test_a_missing_pipeline_file_exits_2(tmp_path):
    done = tilewise("run", tmp_path / "nope.yaml")
    assert done.returncode == 2 and "pipeline file" in done.stderr and "does not exist" in \
        done.stderr


def test_parameter_types_of_dicts_lists_and_unions():
    """Built-in ops may take a dict per axis or an int, a list of scales, a variable tuple."""
    from tilewise.spec import _Document

    doc = _Document("p.yaml", None, {})
    keys = ("steps", "s", "params", "factors")
    assert doc._typed({"y": 4, "x": 2}, dict[str, int] | int, keys) == {"y": 4, "x": 2}
    assert doc._typed(4, dict[str, int] | int, keys) == 4
    assert doc._typed([3, 21, 2], tuple[int, ...], keys) == (3, 21, 2)
    assert doc._typed([1, 2.5], list[float], keys) == [1.0, 2.5]
    with pytest.raises(tw.PipelineFileError, match=r"steps\.s\.params\.factors\.y: must be an "
                                                    r"integer, not 'four'"):
        doc._typed({"y": "four"}, dict[str, int], keys)
    with pytest.raises(tw.PipelineFileError, match=r"must be an integer, not 2\.5"):
        doc._typed(2.5, dict[str, int] | int, keys)

"""The bad-input catalogue: each mistake gets its own exception class and one sentence that
names the file, parameter or tile at fault (ENOSPC is in test_resume: it must also resume)."""

import os
import shutil
import subprocess
import threading

import numpy as np
import pytest
from conftest import data_path

import tilewise as tw


def ones(*shape):
    return tw.open(np.ones(shape, "float32"))


def holding_a_lock():
    """A function that cannot reach another process: it closes over a lock."""
    lock = threading.Lock()

    def locked(a):
        with lock:
            return a

    return locked


def truncated_geotiff(tmp_path):
    """A real DEM cut short: its header is intact, the blocks at the end are gone."""
    source = data_path("dem", "srtm90.tif")
    path = tmp_path / "cut.tif"
    with open(source, "rb") as f:
        data = f.read()
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


def unreadable(tmp_path):
    path = tmp_path / "secret.tif"
    if os.geteuid() == 0:  # root reads any file: a folder in its place is unreadable as one
        path.mkdir()
    else:
        shutil.copy(data_path("dem", "srtm90.tif"), path)
        path.chmod(0)
    return path


CATALOGUE = {
    "missing file": (
        lambda p: tw.open(p / "nothere.tif"), tw.InputError, "{p}/nothere.tif does not exist"),
    "unreadable file": (
        lambda p: tw.open(unreadable(p)), tw.InputError, "{p}/secret.tif"),
    "corrupt file": (
        lambda p: (p / "bad.tif").write_bytes(b"II*\x00garbage" * 10) and tw.open(p / "bad.tif"),
        tw.InputError, "cannot read {p}/bad.tif as a raster"),
    "truncated file": (
        lambda p: tw.save(tw.open(truncated_geotiff(p)), p / "o.zarr", tile=512),
        tw.InputError, "input {p}/cut.tif cannot be read at"),
    "unsupported input format": (
        lambda p: (p / "a.xyz").write_text("x") and tw.open(p / "a.xyz"),
        tw.UnsupportedFormatError, "cannot read {p}/a.xyz: unknown suffix '.xyz'"),
    "unsupported output format": (
        lambda p: tw.save(ones(4, 4), p / "a.png"), tw.UnsupportedFormatError,
        "cannot write {p}/a.png"),
    "inputs on different grids": (
        lambda p: tw.map(np.add, ones(4, 4), ones(4, 5)), tw.GridMismatchError,
        "inputs of op 'add' must share one grid"),
    "inputs in different CRSs": (
        lambda p: tw.map(np.add, tw.map(np.asarray, ones(4, 4), meta={"crs": "EPSG:4326"}),
                         tw.map(np.asarray, ones(4, 4), meta={"crs": "EPSG:3857"})),
        tw.GridMismatchError,
        "inputs 0 and 1 of op 'add' are on different grids: their crs differ (EPSG:4326 vs "),
    "negative margin": (
        lambda p: tw.map(np.asarray, ones(4, 4), margin=-1), tw.MarginError,
        "margin of op 'asarray' must be a non-negative integer, not -1"),
    "non-integer margin": (
        lambda p: tw.map(np.asarray, ones(4, 4), margin=1.5), tw.MarginError,
        "margin of op 'asarray' must be a non-negative integer, not 1.5"),
    "unknown-axis margin": (
        lambda p: tw.map(np.asarray, ones(4, 4), margin={"z": 1}), tw.MarginError,
        "margin of op 'asarray' names axis 'z'"),
    "impossible memory budget": (
        lambda p: tw.save(ones(512, 512), p / "a.zarr", memory="1MiB"), tw.BudgetError,
        "more than the memory budget 1.00 MiB; raise memory or lower workers"),
    "unpicklable function for processes": (
        lambda p: tw.save(tw.map(holding_a_lock(), ones(4, 4), name="inline"), p / "a.npy",
                          executor="processes"),
        tw.UnpicklableFunctionError, "the function of op 'inline' cannot be sent"),
    "output path equal to an input": (
        lambda p: np.save(p / "a.npy", np.ones((4, 4))) or tw.save(
            tw.open(p / "a.npy"), p / "a.npy", overwrite=True),
        tw.OutputExistsError, "output {p}/a.npy is also an input"),
    "output exists without overwrite": (
        lambda p: np.save(p / "b.npy", np.ones((4, 4))) or tw.save(ones(4, 4), p / "b.npy"),
        tw.OutputExistsError, "output {p}/b.npy exists; pass overwrite=True"),
    "output folder missing": (
        lambda p: tw.save(ones(4, 4), p / "no" / "a.npy"), tw.OutputError,
        "the folder of output {p}/no/a.npy does not exist"),
    # Failing on the probe tile stops a run before it writes; these fail on a later tile.
    "NaN where the output dtype is integer": (
        lambda p: tw.save(tw.map(lambda a, *, tile: a if tile.probe else a * np.nan,
                                 ones(600, 600), dtype="uint8", name="nanify"),
                          p / "a.zarr", tile=300, executor="serial"),
        tw.TileError, "op 'nanify' on tile (0, 0) (region [0:300, 0:300], input window "
                      "[0:300, 0:300]) returned NaN or infinite values, which the declared dtype"),
    "op raises": (
        lambda p: tw.save(tw.map(lambda a, *, tile: a if tile.probe else 1 / 0, ones(600, 600),
                                 name="divide"), p / "a.zarr", tile=300, executor="serial"),
        tw.TileError, "op 'divide' on tile (0, 0) (region [0:300, 0:300], input window "
                      "[0:300, 0:300]) raised ZeroDivisionError"),
    "op returns the wrong shape": (
        lambda p: tw.save(tw.map(lambda a, *, tile: a if tile.probe else a[1:], ones(600, 600),
                                 name="shrink"), p / "a.zarr", tile=300, executor="serial"),
        tw.TileError, "op 'shrink' on tile (0, 0) (region [0:300, 0:300], input window "
                      "[0:300, 0:300]) returned shape (299, 300)"),
}


@pytest.mark.parametrize("case", CATALOGUE)
def test_each_bad_input_gets_its_class_and_a_sentence_naming_the_culprit(tmp_path, case):
    call, error, message = CATALOGUE[case]
    with pytest.raises(error) as raised:
        call(tmp_path)
    text = str(raised.value)
    assert message.format(p=tmp_path) in text
    assert "\n" not in text


def test_a_margin_larger_than_the_image_is_the_whole_image():
    a = np.random.default_rng(0).normal(size=(9, 7))
    got = tw.map(lambda x: x - x.mean(), tw.open(a), margin=1000).compute(tile=3)
    np.testing.assert_array_equal(got, a - a.mean())


def test_read_only_output_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:  # root writes anywhere a permission allows: mount it read-only
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"as root, a read-only folder needs a read-only mount: {done.stderr}")
    else:
        folder.chmod(0o555)
    try:
        with pytest.raises(tw.OutputError, match=f"the folder of output {folder}/a.zarr is not "
                                                 "writable"):
            tw.save(ones(4, 4), folder / "a.zarr")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(folder)], check=False)


def test_a_different_pipeline_is_refused_saying_what_changed(tmp_path):
    from tilewise import library as ops

    a = np.random.default_rng(1).normal(size=(32, 32)).astype("float32")
    np.save(tmp_path / "in.npy", a)

    def failing(image):
        return tw.map(lambda x, *, tile: x[1:] if tile.index == (1, 1) else x, image, name="half")

    def start(image, **kwargs):
        with pytest.raises(tw.TileError):
            tw.save(failing(image), tmp_path / "o.zarr", tile=16, executor="serial", **kwargs)

    start(ops.gaussian(tw.open(tmp_path / "in.npy"), sigma=1))
    changed = failing(ops.gaussian(tw.open(tmp_path / "in.npy"), sigma=2))
    with pytest.raises(tw.OutputExistsError, match=rf"output {tmp_path}/o\.zarr was begun by a "
                       r"different pipeline: parameter 'sigma' of op 'gaussian' changed from "
                       r"1\.0 to 2\.0; the margin of op 'gaussian' changed from \[4, 4\] to "
                       r"\[8, 8\]; pass overwrite=True"):
        tw.save(changed, tmp_path / "o.zarr", tile=16)
    with pytest.raises(tw.OutputExistsError, match=r"the tile grid changed from tiles of "
                                                   r"16 x 16 over 32 x 32 to tiles of 8 x 8"):
        tw.save(failing(ops.gaussian(tw.open(tmp_path / "in.npy"), sigma=1)),
                tmp_path / "o.zarr", tile=8)
    np.save(tmp_path / "in.npy", a + 1)
    with pytest.raises(tw.OutputExistsError, match=rf"input {tmp_path}/in\.npy changed "
                                                   r"\(mtime_ns, check differ\)"):
        tw.save(failing(ops.gaussian(tw.open(tmp_path / "in.npy"), sigma=1)),
                tmp_path / "o.zarr", tile=16)
    report = tw.save(ops.gaussian(tw.open(tmp_path / "in.npy"), sigma=1), tmp_path / "o.zarr",
                     tile=16, overwrite=True)
    assert (report.tiles, report.resumed) == (4, 0)


def test_an_edited_user_function_is_a_different_pipeline(tmp_path):
    module = tmp_path / "userops.py"
    module.write_text("def f(a, *, tile):\n    return a[1:] if tile.index == (1, 1) else a\n")
    pipeline = tmp_path / "p.yaml"
    np.save(tmp_path / "in.npy", np.ones((32, 32)))
    pipeline.write_text("inputs: {x: in.npy}\nsteps: {y: {function: 'userops:f', margin: 0, "
                        "input: x}}\noutputs: {y: y.zarr}\nrun: {tile: 16}\n")

    def run():
        import sys

        return subprocess.run([sys.executable, "-m", "tilewise.cli", "run", str(pipeline)],
                              capture_output=True, text=True, cwd=tmp_path)

    assert run().returncode == 1
    module.write_text("def f(a, *, tile):\n    return a\n")
    done = run()
    assert done.returncode == 2
    assert "the code of op 'y' (userops:f) changed" in done.stderr



def test_on_the_command_line_bad_input_is_one_line_without_traceback(tmp_path):
    import sys

    truncated_geotiff(tmp_path)
    (tmp_path / "p.yaml").write_text("inputs: {dem: cut.tif}\nsteps: {s: {op: slope, "
                                     "input: dem}}\noutputs: {s: s.zarr}\nrun: {tile: 512}\n")
    done = subprocess.run([sys.executable, "-m", "tilewise.cli", "run", "p.yaml"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"tilewise: input {tmp_path}/cut.tif cannot be read at ")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr

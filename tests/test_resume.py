"""Nothing lost: killed, failed, interrupted and out-of-space runs resume to the same bytes."""

import errno
import json
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rasterio
from conftest import data_path

import tilewise as tw
from tilewise import journal

# The child wraps os.fsync to take 20 ms (in its workers too), so that most of a tile's time
# is spent inside its write and a kill at a random moment lands in the middle of one more
# often than not.
CHILD = """
import os, sys, time
_fsync = os.fsync
def slow_fsync(fd):
    time.sleep(0.02)
    _fsync(fd)
os.fsync = slow_fsync
if __name__ == "__main__":  # spawned workers import this module too
    from tilewise.cli import main
    sys.exit(main(sys.argv[1:]))
"""

OPS = """
import os
import numpy as np
from scipy import ndimage


def counted_relief(a, *, log, tile):
    if not tile.probe:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, (" ".join(map(str, tile.index)) + "\\n").encode())
        os.close(fd)
    return ndimage.gaussian_filter(a.astype("float32"), 1.0, mode="nearest")
"""

PIPELINE = """
inputs: {{dem: {dem}}}
steps:
  relief: {{function: "crashops:counted_relief", margin: 4, dtype: float32, input: dem,
            params: {{log: {log}}}}}
  shade: {{op: hillshade, input: relief}}
outputs:
  relief: out/relief.zarr
  shade: out/shade.tif
run: {{tile: 256, workers: 2, executor: {executor}}}
"""


def setup_run(folder, dem, executor):
    folder.mkdir()
    (folder / "crashops.py").write_text(OPS)
    (folder / "child.py").write_text(CHILD)
    log = folder / "calls.log"
    (folder / "p.yaml").write_text(PIPELINE.format(dem=dem, log=log, executor=executor))
    return folder / "p.yaml", log


def launch(pipeline, *extra):
    return subprocess.Popen(
        [sys.executable, str(pipeline.parent / "child.py"), "run", str(pipeline), "--quiet",
         *extra], cwd=pipeline.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def recorded(path):
    """Tile records in a journal, every run's, in order (duplicates kept)."""
    try:
        lines = path.read_text().split("\n")[1:]
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, int):
            out.append(entry)
    return out


def assert_same_outputs(a, b):
    za, zb = tw.open(a / "out" / "relief.zarr"), tw.open(b / "out" / "relief.zarr")
    np.testing.assert_array_equal(za.compute(), zb.compute(), strict=True)
    assert za.meta["transform"] == zb.meta["transform"]
    with rasterio.open(a / "out" / "shade.tif") as x, rasterio.open(b / "out" / "shade.tif") as y:
        # str: the shade's nodata is NaN (a float hillshade), and NaN != NaN
        assert {**x.profile, "nodata": str(x.nodata)} == {**y.profile, "nodata": str(y.nodata)}
        np.testing.assert_array_equal(x.read(), y.read(), strict=True)


@pytest.mark.parametrize("executor,kills", [("threads", 12), ("processes", 10)])
def test_sigkill_at_random_moments_then_resume_gives_the_same_bytes(tmp_path, executor, kills):
    dem = data_path("dem", "srtm90.tif")
    reference, _ = setup_run(tmp_path / "reference", dem, executor)
    done = launch(reference)
    assert done.wait(300) == 0, done.stderr.read()
    pipeline, log = setup_run(tmp_path / "killed", dem, executor)
    relief_journal = pipeline.parent / "out" / "relief.zarr.journal"
    shade_journal = pipeline.parent / "out" / "shade.tif.journal"
    total = 10 * 17  # 2465 x 4269 pixels in tiles of 256
    rng = random.Random(1234)
    # Kill once while still starting up, once between the last tile and the move into place
    # (during the GeoTIFF conversion), and otherwise after a random number of new tiles.
    schedule = ["start"] + ["tiles"] * (kills - 2) + ["converting"]
    launches = 0
    for moment in schedule:
        proc = launch(pipeline)
        launches += 1
        before = len(recorded(relief_journal))
        if moment == "start":
            time.sleep(0.3)
        elif moment == "tiles":
            target = before + rng.randint(1, max(1, (total - before) // 4))
            while len(recorded(relief_journal)) < target and proc.poll() is None:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.05))
        else:
            while len(recorded(relief_journal)) < total and proc.poll() is None:
                time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (pipeline.parent / "out" / "shade.tif").exists() or moment == "converting"
    final = launch(pipeline)
    launches += 1
    assert final.wait(300) == 0, final.stderr.read()
    assert_same_outputs(reference.parent, pipeline.parent)

    # From the journals: every tile recorded exactly once, whatever the kills.
    for path in (relief_journal, shade_journal):
        records = recorded(path)
        assert sorted(records) == list(range(total)), "a finished tile was computed twice"
        assert journal.read(str(path)).complete
    # Work redone: calls of the op beyond one per tile, at most the tiles in flight at each
    # kill: 2 being computed (one per worker), 2 written and waiting to be fsynced and
    # journaled (the recorder's queue) and 1 being fsynced.
    calls = len(log.read_text().split())  # two numbers per call
    redone = calls // 2 - total
    assert 0 <= redone <= 5 * kills, (redone, calls // 2)
    print(f"{executor}: {kills} kills, {launches} launches, {redone} tiles redone")


def test_ctrl_c_stops_cleanly_keeps_tiles_and_resumes(tmp_path):
    dem = data_path("dem", "srtm90.tif")
    reference, _ = setup_run(tmp_path / "reference", dem, "threads")
    assert launch(reference).wait(300) == 0
    for executor in ("threads", "processes"):
        pipeline, _ = setup_run(tmp_path / executor, dem, executor)
        proc = launch(pipeline)
        relief_journal = pipeline.parent / "out" / "relief.zarr.journal"
        while len(recorded(relief_journal)) < 10 and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        asked = time.perf_counter()
        code = proc.wait(60)
        print(f"{executor}: stopped {time.perf_counter() - asked:.2f} s after Ctrl-C")
        stderr = proc.stderr.read()
        assert code == 130, stderr
        assert stderr.strip() == ("tilewise: interrupted (finished tiles are kept; run the "
                                  "same command again to resume)")
        kept = len(recorded(relief_journal))
        assert 10 <= kept < 170 and not (pipeline.parent / "out" / "shade.tif").exists()
        again = subprocess.run([sys.executable, "-m", "tilewise.cli", "run", str(pipeline)],
                               cwd=pipeline.parent, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        assert f"({kept} done by an earlier run)" in again.stdout
        assert_same_outputs(reference.parent, pipeline.parent)


def test_ctrl_c_while_worker_processes_start_stops_cleanly(tmp_path):
    """Ctrl-C at moments from the first worker process's appearance on: the workers meet at
    a barrier while they start, and one arriving after the interruption once waited there
    120 s, hanging the exit; the pool's semaphores leaked a resource-tracker warning onto
    stderr after about one Ctrl-C in ten. Each moment is a run of its own."""
    import psutil

    pipeline, _ = setup_run(tmp_path / "p", data_path("dem", "srtm90.tif"), "processes")
    for delay in np.linspace(0, 1.6, 9):
        proc = launch(pipeline, "--overwrite")

        def workers(proc=proc):
            try:
                return [c for c in psutil.Process(proc.pid).children()
                        if "spawn_main" in " ".join(c.cmdline())]
            except psutil.Error:  # a process gone while listed
                return []

        while proc.poll() is None and not workers():
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
        stderr = proc.stderr.read()
        assert code == 130, (delay, stderr)
        assert stderr.strip() == ("tilewise: interrupted (finished tiles are kept; run the "
                                  "same command again to resume)"), delay


def _enospc_after(monkeypatch, writes):
    """Make Zarr's local store fail with ENOSPC once `writes` chunks have been written."""
    import zarr.storage

    real = zarr.storage.LocalStore.set
    count = {"n": 0}

    async def full_disk(self, key, value):
        if key.startswith("c/"):
            count["n"] += 1
            if count["n"] > writes:
                raise OSError(errno.ENOSPC, "No space left on device", str(self.root / key))
        return await real(self, key, value)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", full_disk)


def relief(dem):
    from tilewise import library as ops

    return ops.gaussian(tw.open(dem), sigma=1.5)


def test_disk_full_midway_is_resumable_once_space_is_freed(tmp_path, monkeypatch):
    dem = data_path("dem", "srtm90.tif")
    image = relief(dem)
    tw.save(image, tmp_path / "reference.zarr", tile=256)
    with monkeypatch.context() as patch:
        _enospc_after(patch, 60)
        with pytest.raises(OSError) as failed:
            tw.save(image, tmp_path / "out.zarr", tile=256)
    assert failed.value.errno == errno.ENOSPC
    assert not (tmp_path / "out.zarr").exists() and (tmp_path / "out.zarr.partial").exists()
    kept = journal.read(str(tmp_path / "out.zarr.journal")).count
    assert 0 < kept < 170
    report = tw.save(image, tmp_path / "out.zarr")  # the journal's tile grid is reused
    assert (report.resumed, report.tiles) == (kept, 170 - kept)
    np.testing.assert_array_equal(tw.open(tmp_path / "out.zarr").compute(),
                                  tw.open(tmp_path / "reference.zarr").compute())


def _mount_tmpfs(folder, size):
    folder.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}); "
                    "test_disk_full_midway_is_resumable_once_space_is_freed injects ENOSPC")


def test_a_really_full_filesystem_then_resume(tmp_path):
    dem = data_path("dem", "srtm90.tif")
    reference, _ = setup_run(tmp_path / "reference", dem, "threads")
    assert launch(reference).wait(300) == 0
    pipeline, _ = setup_run(tmp_path / "small", dem, "threads")
    out = pipeline.parent / "out"
    _mount_tmpfs(out, "6m")
    try:
        full = subprocess.run([sys.executable, "-m", "tilewise.cli", "run", str(pipeline)],
                              cwd=pipeline.parent, capture_output=True, text=True)
        assert full.returncode == 1, full.stderr
        assert "No space left on device" in full.stderr and "run the same command again" in \
            full.stderr and "Traceback" not in full.stderr
        kept = journal.read(str(out / "relief.zarr.journal")).count
        subprocess.run(["mount", "-o", "remount,size=200m", str(out)], check=True)
        again = subprocess.run([sys.executable, "-m", "tilewise.cli", "run", str(pipeline)],
                               cwd=pipeline.parent, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        assert f"({kept} done by an earlier run)" in again.stdout
        assert_same_outputs(reference.parent, pipeline.parent)
    finally:
        subprocess.run(["umount", str(out)], check=False)


def test_on_error_continue_finishes_the_rest_then_resumes_only_the_failed(tmp_path):
    broken = {(0, 1), (2, 3)}
    seen = []

    def fragile(a, *, tile):
        if not tile.probe:
            seen.append(tile.index)
            if tile.index in broken:
                raise ValueError("bad data")
        return a * 2

    image = tw.map(fragile, tw.open(np.arange(64 * 64, dtype="float32").reshape(64, 64)))
    with pytest.raises(tw.TileError, match=r"2 of 16 tiles failed, the first: op 'fragile' on "
                                           r"tile \(\d, \d\).*; the last: op 'fragile'"):
        tw.save(image, tmp_path / "o.tif", tile=16, on_error="continue")
    assert sorted(seen) == sorted((i, j) for i in range(4) for j in range(4))
    assert journal.read(str(tmp_path / "o.tif.journal")).count == 14
    broken.clear()
    seen.clear()
    report = tw.save(image, tmp_path / "o.tif", tile=16)
    assert sorted(seen) == [(0, 1), (2, 3)] and report.resumed == 14
    np.testing.assert_array_equal(tw.open(tmp_path / "o.tif").compute(),
                                  2 * np.arange(64 * 64, dtype="float32").reshape(64, 64))
    with pytest.raises(tw.ParameterError, match="on_error='skip'"):
        tw.save(image, tmp_path / "p.tif", on_error="skip")


def test_transient_read_and_write_errors_are_retried(tmp_path, monkeypatch):
    from tilewise.io import npy, retry, zarr_array

    monkeypatch.setattr(retry, "FIRST_WAIT", 0.001)
    a = np.arange(40 * 40, dtype="float32").reshape(40, 40)
    np.save(tmp_path / "in.npy", a)
    failures = {"read": 2, "write": 3}
    real_read, real_write = npy.NpySource.read, zarr_array.write_chunks

    def flaky_read(self, box):
        if failures["read"]:
            failures["read"] -= 1
            raise OSError(errno.EIO, "Input/output error")
        return real_read(self, box)

    def flaky_write(path, box, data):
        if failures["write"]:
            failures["write"] -= 1
            raise OSError(errno.ETIMEDOUT, "Connection timed out")
        return real_write(path, box, data)

    monkeypatch.setattr(npy.NpySource, "read", flaky_read)
    monkeypatch.setattr(zarr_array, "write_chunks", flaky_write)
    image = tw.map(lambda x: x + 1, tw.open(tmp_path / "in.npy"))
    tw.save(image, tmp_path / "o.zarr", tile=20, executor="serial")
    np.testing.assert_array_equal(tw.open(tmp_path / "o.zarr").compute(), a + 1)
    failures["read"] = 10  # more than the attempts allowed: a clear error naming the file
    with pytest.raises(tw.InputError, match=r"input .*in\.npy cannot be read at .*OSError"):
        tw.save(image, tmp_path / "p.zarr", tile=20, executor="serial")


def test_a_second_run_on_the_same_output_is_refused_while_the_first_writes(tmp_path):
    dem = data_path("dem", "srtm90.tif")
    pipeline, _ = setup_run(tmp_path / "twice", dem, "threads")
    first = launch(pipeline)
    relief_journal = pipeline.parent / "out" / "relief.zarr.journal"
    while len(recorded(relief_journal)) < 3 and first.poll() is None:
        time.sleep(0.01)
    second = subprocess.run([sys.executable, "-m", "tilewise.cli", "run", str(pipeline)],
                            cwd=pipeline.parent, capture_output=True, text=True)
    assert second.returncode == 2
    assert second.stderr.strip() == (f"tilewise: output {pipeline.parent}/out/relief.zarr is "
                                     "being written by another tilewise run right now; wait "
                                     "for it or stop it")
    assert first.wait(300) == 0, first.stderr.read()
    assert journal.read(str(relief_journal)).complete

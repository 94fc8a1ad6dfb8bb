"""Nothing silently wrong, nothing destroyed, every message right (the trust issue)."""

import re
import subprocess
import sys

import numpy as np
import pytest

import tilewise as tw
from tilewise import library as ops


def tilewise(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tilewise.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def test_values_outside_an_integer_dtype_are_refused_unless_asked():
    a = np.full((600, 600), 200.0)
    a[550, 560] = 3057.0  # outside the central probe tile
    img = tw.open(a)
    with pytest.raises(tw.TileError, match=r"op 'to8' on tile \(1, 1\) .* returned values from "
                       r"200\.0 to 3057\.0, outside the range of the declared dtype uint8 "
                       r"\(0 to 255\).*cast='clip'"):
        tw.map(np.asarray, img, dtype="uint8", name="to8").compute(tile=300)
    clipped = tw.map(np.asarray, img, dtype="uint8", cast="clip").compute(tile=300)
    assert clipped[550, 560] == 255 and clipped[0, 0] == 200
    wrapped = tw.map(np.asarray, img, dtype="uint8", cast="unsafe").compute(tile=300)
    assert wrapped[550, 560] == 3057 % 256
    ints = tw.map(lambda x: x.astype("int32") * 300, tw.open(np.ones((4, 4), "int32")),
                  dtype="int8")
    with pytest.raises(tw.TileError, match="outside the range of the declared dtype int8"):
        ints.compute()
    with pytest.raises(tw.ParameterError, match="cast='round'"):
        tw.map(np.asarray, img, cast="round")


def test_a_damaged_journal_is_named_and_overwrite_recovers(tmp_path):
    a = np.arange(64.0).reshape(8, 8)

    def stop(p):
        if p.done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tw.save(tw.open(a), tmp_path / "o.zarr", tile=4, progress=stop, workers=1)
    log = tmp_path / "o.zarr.journal"
    log.write_bytes(log.read_bytes()[:5] + b"\xff\xfe" + log.read_bytes()[7:])
    with pytest.raises(tw.OutputError, match=r"journal .*o\.zarr\.journal is damaged at line 1 "
                       r".*pass overwrite=True"):
        tw.save(tw.open(a), tmp_path / "o.zarr", tile=4)
    tw.save(tw.open(a), tmp_path / "o.zarr", tile=4, overwrite=True)
    np.testing.assert_array_equal(tw.open(tmp_path / "o.zarr").compute(), a)
    log.write_text(log.read_text() + "17\n")  # a tile index the grid does not have
    with pytest.raises(tw.OutputError, match="damaged at line"):
        tw.save(tw.open(a), tmp_path / "o.zarr", tile=4)


@pytest.mark.parametrize("build, message", [
    (lambda img: ops.gaussian(img, sigmaa=2),
     "op 'gaussian' has no parameter 'sigmaa'; its parameters are sigma, truncate, mode"),
    (lambda img: ops.gaussian(img),
     "op 'gaussian' needs the parameter 'sigma'; its parameters are sigma, truncate, mode"),
    (lambda img: tw.map(lambda a, *, size: a, img, sise=3, name="f"),
     "op 'f' has no parameter 'sise'; its parameters are size"),
])
def test_misspelled_parameters_are_parameter_errors(build, message):
    with pytest.raises(tw.ParameterError) as raised:
        build(tw.open(np.zeros((8, 8))))
    assert str(raised.value) == message
    assert isinstance(raised.value, TypeError) and isinstance(raised.value, ValueError)


def test_error_classes_are_also_the_built_in_errors_they_refine():
    assert issubclass(tw.InputError, OSError) and issubclass(tw.OutputError, OSError)
    assert issubclass(tw.OutputExistsError, FileExistsError)
    for cls in (tw.ParameterError, tw.MarginError, tw.GridMismatchError, tw.BudgetError,
                tw.UnsupportedFormatError, tw.PipelineFileError):
        assert issubclass(cls, ValueError)
    with pytest.raises(ValueError):
        tw.map(np.asarray, tw.open(np.zeros((4, 4))), margin=-1)


def test_a_finished_pipeline_computes_nothing_not_even_its_percentiles(tmp_path):
    calls = []

    def counted(a):
        calls.append(a.shape)
        return a

    dem = tw.map(counted, tw.open(np.arange(300.0 * 200).reshape(300, 200)), name="counted")
    first = tw.save(ops.stretch(dem), tmp_path / "s.zarr", tile=100)
    assert first.tiles == 6 and calls
    calls.clear()
    again = tw.save(ops.stretch(dem), tmp_path / "s.zarr", tile=100)
    assert (again.tiles, again.resumed, calls) == (0, 6, [])
    with pytest.raises(tw.OutputExistsError, match=r"parameter 'high' of op 'stretch' changed "
                       r"from the percentile q=\[2\.0, 98\.0\]\[1\] of its input to the "
                       r"percentile q=\[5\.0, 95\.0\]\[1\]"):
        tw.save(ops.stretch(dem, percentiles=(5.0, 95.0)), tmp_path / "s.zarr", tile=100)
    assert calls == []  # refused before any sweep


def test_cli_says_nothing_is_kept_after_a_failure_on_the_probe(tmp_path):
    (tmp_path / "bad.py").write_text("def f(a):\n    raise ValueError('bad pixel')\n")
    np.save(tmp_path / "in.npy", np.ones((64, 64)))
    (tmp_path / "p.yaml").write_text("inputs: {x: in.npy}\nsteps: {y: {function: 'bad:f', "
                                     "margin: 0, input: x}}\noutputs: {y: out/y.zarr}\n")
    done = tilewise("run", tmp_path / "p.yaml", cwd=tmp_path)
    assert done.returncode == 1
    assert "probe tile" in done.stderr and "nothing was written" in done.stderr
    assert "resume" not in done.stderr


def test_bad_options_leave_no_folder_behind(tmp_path):
    np.save(tmp_path / "in.npy", np.ones((8, 8)))
    (tmp_path / "p.yaml").write_text("inputs: {x: in.npy}\noutputs: {x: out/x.zarr}\n")
    done = tilewise("run", tmp_path / "p.yaml", "--memory", "abc", cwd=tmp_path)
    assert done.returncode == 2 and "memory='abc' is not a size" in done.stderr
    assert not (tmp_path / "out").exists()


def test_an_output_where_nothing_can_be_written_is_an_output_error(tmp_path):
    np.save(tmp_path / "in.npy", np.ones((8, 8)))
    (tmp_path / "p.yaml").write_text("inputs: {x: in.npy}\noutputs: {x: /proc/x.zarr}\n")
    done = tilewise("run", tmp_path / "p.yaml", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("tilewise: ") and "/proc/x.zarr" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_output_folder_that_is_a_file_is_an_output_error(tmp_path):
    np.save(tmp_path / "in.npy", np.ones((8, 8)))
    (tmp_path / "fake.tif").write_text("a file, not a folder")
    (tmp_path / "p.yaml").write_text("inputs: {x: in.npy}\noutputs: {x: fake.tif/x.tif}\n")
    done = tilewise("run", tmp_path / "p.yaml", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "the folder of output" in done.stderr and "fake.tif/x.tif cannot be made" in \
        done.stderr and "Traceback" not in done.stderr


def test_memory_words(tmp_path):
    img = tw.map(np.asarray, tw.open(np.ones((64, 64))))
    with pytest.raises(tw.ParameterError, match=r"memory=0\.5 is less than one byte"):
        tw.save(img, tmp_path / "a.zarr", memory=0.5)
    with pytest.raises(tw.BudgetError) as raised:
        tw.save(img, tmp_path / "a.zarr", memory="1KiB", executor="threads")
    # Sizes keep their unit (1.00 kiB, not 0.00 MiB); the message names no executor.
    assert not re.search(r"(?<![\d.])0(\.0+)? MiB", str(raised.value))
    assert "1.00 kiB" in str(raised.value) and "threads" not in str(raised.value)


def test_plan_says_the_tile_came_from_the_journal(tmp_path):
    np.save(tmp_path / "in.npy", np.ones((512, 512), "float32"))
    (tmp_path / "p.yaml").write_text("inputs: {x: in.npy}\nsteps: {y: {op: mean, input: x, "
                                     "params: {size: 3}}}\noutputs: {y: y.zarr}\n")
    assert tilewise("run", tmp_path / "p.yaml", "--tile", "512", "--quiet",
                    cwd=tmp_path).returncode == 0
    done = tilewise("plan", tmp_path / "p.yaml", "--memory", "1MiB", cwd=tmp_path)
    assert done.returncode == 2
    assert "(from the journal)" in done.stderr and "pass overwrite" in done.stderr


def test_overwrite_replaces_only_what_tilewise_wrote(tmp_path):
    img = tw.open(np.ones((8, 8), "float32"))
    precious = tmp_path / "precious.zarr"
    (precious / "sub").mkdir(parents=True)
    (precious / "sub" / "notes.txt").write_text("three years of field notes")
    with pytest.raises(tw.OutputError, match=r"precious\.zarr is a folder that tilewise did "
                                             r"not write"):
        tw.save(img, precious, overwrite=True)
    assert (precious / "sub" / "notes.txt").read_text() == "three years of field notes"
    import zarr

    zarr.create_array(tmp_path / "foreign.zarr", shape=(8, 8), dtype="float32")
    with pytest.raises(tw.OutputError, match="did not write"):
        tw.save(img, tmp_path / "foreign.zarr", overwrite=True)
    (tmp_path / "fake.tif").write_text("not a TIFF")
    with pytest.raises(tw.OutputError, match=r"fake\.tif is a file that tilewise did not"):
        tw.save(img, tmp_path / "fake.tif", overwrite=True)
    # What tilewise wrote, and plain files of the output's format, are replaced.
    tw.save(img, tmp_path / "ours.zarr")
    (tmp_path / "ours.zarr.journal").unlink()
    tw.save(tw.map(np.negative, img), tmp_path / "ours.zarr",
            overwrite=True)
    np.save(tmp_path / "plain.npy", np.zeros((3, 3)))
    tw.save(img, tmp_path / "plain.npy", overwrite=True)
    assert np.load(tmp_path / "plain.npy").shape == (8, 8)
    assert tw.open(tmp_path / "ours.zarr").compute()[0, 0] == -1


def test_a_killed_worker_is_named_and_the_rerun_completes_exactly(tmp_path):
    from opslib import dies_once

    a = np.arange(96.0 * 80).reshape(96, 80)
    marker = tmp_path / "died"

    def run():
        img = tw.map(dies_once, tw.open(a), marker=str(marker), name="dies_once")
        return tw.save(img, tmp_path / "o.zarr", tile=32, executor="processes", workers=2)

    with pytest.raises(tw.WorkerLostError, match=r"a worker of the processes executor died "
                       r"\(.*\) while computing tile\(s\) .*\(1, 1\)") as raised:
        run()
    assert raised.value.kept is not None and marker.exists()
    report = run()
    assert report.resumed == raised.value.kept and report.tiles + report.resumed == 9
    np.testing.assert_array_equal(tw.open(tmp_path / "o.zarr").compute(), a * 2)

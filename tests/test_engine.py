"""Ops, planning, executors and runs: errors, budgets, laziness, progress."""

import os
import pickle
import threading
import warnings

import numpy as np
import pytest
from conftest import above_resident
from opslib import all_nan_mean, correlate, scribble, where_am_i, wrong_shape

import tilewise as tw
from tilewise.pipeline import Pipeline
from tilewise.plan import probe


def test_halos_add_up_along_a_chain():
    img = tw.open(np.zeros((100, 100)))
    a = tw.map(np.asarray, img, margin=4)
    b = tw.map(np.asarray, a, margin={"y": 1, "x": 2})
    regions = Pipeline.of([b]).regions(tw.regions.Box((50, 50), (60, 60)))
    assert regions[id(img.node)] == tw.regions.Box((45, 44), (65, 66))


def test_source_window_is_read_once_per_tile_when_branches_share_it():
    reads = []

    img = tw.open(np.zeros((20, 20)))
    original = img.node.source.read

    def read(box):
        reads.append(box)
        return original(box)

    object.__setattr__(img.node.source, "read", read)
    left = tw.map(np.asarray, img, margin=3)
    right = tw.map(np.asarray, img, margin=1)
    both = tw.map(np.add, left, right)
    both.compute(tile=10, executor="serial", memory=above_resident("64MiB"))
    tiles_warm_up_and_probe = 4 + 1 + 1
    assert len(reads) == tiles_warm_up_and_probe


def test_tile_info_reports_position():
    got = where_am_i(tw.open(np.zeros((4, 10)))).compute(tile={"x": 4})
    assert got[0].tolist() == [1] * 4 + [1000] * 4 + [2000] * 2


def test_inputs_are_read_only():
    with pytest.raises(tw.TileError, match=r"op 'scribble'.*read-only"):
        scribble(tw.open(np.ones((6, 6)))).compute(tile=3)


def test_wrong_shape_names_op_and_tile():
    with pytest.raises(tw.TileError, match=r"op 'wrong_shape' on the probe tile \(region "
                       r"\[146:154, 146:154\].*returned shape \(7, 8\)"):
        wrong_shape(tw.open(np.ones((300, 300)))).compute(tile=100)


def test_nan_into_an_integer_dtype_is_refused():
    a = np.ones((300, 300))
    a[150, 150] = np.nan
    img = tw.map(np.asarray, tw.open(a), dtype="uint8", name="to_bytes")
    with pytest.raises(tw.TileError, match=r"op 'to_bytes' on .* NaN or infinite values.*uint8"):
        img.compute(tile=100)


def test_wrong_number_of_outputs():
    with pytest.raises(tw.TileError, match="must return 2 arrays"):
        tw.map(np.asarray, tw.open(np.ones((4, 4))), outputs=2)[0].compute()


def test_all_nan_tiles_raise_no_warnings_and_change_nothing():
    a = np.full((6, 8), np.nan)
    a[:, 4:] = 1.0
    img = tw.open(a)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = all_nan_mean(img).compute(tile=4)
        reduced = tw.map(lambda x: np.nanmax(x, axis=0, keepdims=True).repeat(len(x), 0),
                         img, margin={"y": 10}).compute(tile=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(got, all_nan_mean.func(a))
        np.testing.assert_array_equal(reduced, np.nanmax(a, axis=0, keepdims=True).repeat(6, 0))


@pytest.mark.parametrize("margin, match", [
    (-1, "non-negative"), (1.5, "non-negative integer"), ({"q": 1}, "axis 'q'"),
    ({"x": -2}, r"margin of op 'asarray'\['x'\]"), (True, "non-negative integer"),
])
def test_bad_margins(margin, match):
    with pytest.raises(tw.MarginError, match=match):
        tw.map(np.asarray, tw.open(np.ones((4, 4))), margin=margin)


def test_inputs_on_different_grids_are_refused(tmp_path):
    with pytest.raises(tw.GridMismatchError, match=r"input 1 has shape \(4, 5\)"):
        tw.map(np.add, tw.open(np.ones((4, 4))), tw.open(np.ones((4, 5))))
    a = tw.map(np.asarray, tw.open(np.ones((4, 4))), meta={"crs": "EPSG:4326"})
    b = tw.map(np.asarray, tw.open(np.ones((4, 4))), meta={"crs": "EPSG:3857"})
    with pytest.raises(tw.GridMismatchError, match="crs differ"):
        tw.map(np.add, a, b)
    with pytest.raises(tw.GridMismatchError, match="share one grid"):
        tw.save([tw.open(np.ones((4, 4))), tw.open(np.ones((3, 4)))],
                [tmp_path / "a.npy", tmp_path / "b.npy"])


def test_parameters_must_be_keywords():
    with pytest.raises(tw.ParameterError, match="input 1 of op 'add' is a int"):
        tw.map(np.add, tw.open(np.ones((2, 2))), 3)


def test_output_meta_from_dict_function_and_per_output_dtype():
    img = tw.open(np.ones((4, 4), "uint8"))
    a, b = tw.map(lambda x: (x, x), img, outputs=2, dtype=["float32", None],
                  meta=[{"nodata": 0}, lambda metas: {"units": "m", **metas[0]}])
    assert (a.dtype, b.dtype) == (np.float32, np.uint8)
    assert a.meta == {"nodata": 0} and b.meta == {"units": "m"}


def test_compute_refuses_results_above_the_budget():
    img = tw.open(np.zeros((1000, 1000)))
    with pytest.raises(tw.BudgetError, match="save it to a file"):
        img.compute(memory="1MiB")


def test_impossible_budget_fails_before_any_work(tmp_path):
    calls = []

    def f(a):
        calls.append(a.shape)
        return -a

    img = tw.map(f, tw.open(np.zeros((4096, 4096), "float64")), margin=8)
    with pytest.raises(tw.BudgetError, match=r"smallest tile .* more than the memory budget"):
        tw.save(img, tmp_path / "x.zarr", memory="4MiB", workers=2)
    assert os.listdir(tmp_path) == []
    assert len(calls) == 2  # only the probe tile ran, after its untraced warm-up


def test_tile_override_that_does_not_fit_is_refused(tmp_path):
    img = tw.map(np.negative, tw.open(np.zeros((2048, 2048), "float32")))
    with pytest.raises(tw.BudgetError,
                       match=r"tile \{'y': 2048, 'x': 2048\} \(from tile=\) needs about"):
        tw.save(img, tmp_path / "x.npy", tile=2048, memory="20MiB", workers=2)


@pytest.mark.parametrize("tile, match", [(0, "positive integer, not 0"), ({"q": 3}, "axis 'q'"),
                                         ((1, 2, 3), "3 sizes"), ("a", "integer")])
def test_bad_tiles(tmp_path, tile, match):
    with pytest.raises(tw.ParameterError, match=match):
        tw.save(tw.open(np.zeros((8, 8))), tmp_path / "x.npy", tile=tile)


def test_bad_run_parameters(tmp_path):
    img = tw.open(np.zeros((8, 8)))
    with pytest.raises(tw.ParameterError, match="executor='gpu'"):
        tw.save(img, tmp_path / "x.npy", executor="gpu")
    with pytest.raises(tw.ParameterError, match="workers=0"):
        tw.save(img, tmp_path / "x.npy", workers=0)
    with pytest.raises(tw.ParameterError, match="memory='lots'"):
        tw.save(img, tmp_path / "x.npy", memory="lots")
    with pytest.raises(tw.ParameterError, match="2 images but 1 paths"):
        tw.save([img, img], [tmp_path / "x.npy"])


def test_chosen_tiles_cover_whole_zarr_chunks(tmp_path):
    img = tw.open(np.zeros((3000, 2000), "float32"))
    report = tw.save(tw.map(np.asarray, img, margin=5), tmp_path / "x.zarr",
                     memory=above_resident("256MiB"))
    import zarr

    chunks = zarr.open_array(tmp_path / "x.zarr").chunks
    assert all(t % c == 0 for t, c in zip(report.tile.values(), chunks, strict=True))


def test_tile_shape_follows_the_budget(tmp_path):
    img = tw.map(np.negative, tw.open(np.zeros((8192, 8192), "float32")), margin=2)
    small = tw.save(img, tmp_path / "a.npy", memory=above_resident("24MiB"), workers=2)
    large = tw.save(img, tmp_path / "b.npy", memory=above_resident("4GiB"), workers=2)
    assert np.prod(list(small.tile.values())) < np.prod(list(large.tile.values()))


def test_probe_sees_temporaries():
    img = tw.open(np.zeros((512, 512), "float32"))
    light = probe(Pipeline.of([tw.map(np.asarray, img)]))
    heavy = probe(Pipeline.of([tw.map(lambda a: (a.astype("float64") * 2).astype("float32")
                                      + np.ones((8, *a.shape), "float64").sum(0), img)]))
    assert heavy.chain > 4 * light.chain


def test_unpicklable_function_is_named_for_processes(tmp_path):
    lock = threading.Lock()

    def locked(a):
        with lock:
            return a

    with pytest.raises(tw.UnpicklableFunctionError, match=r"op 'locked'.*cannot be sent"):
        tw.save(tw.map(locked, tw.open(np.zeros((4, 4)))), tmp_path / "x.npy",
                executor="processes")
    assert os.listdir(tmp_path) == []


def test_lambdas_and_local_functions_run_in_processes():
    """Work reaches worker processes by cloudpickle, as it would reach dask workers."""
    offset = 3.0

    def shifted(a):
        return a + offset

    a = np.arange(40.0).reshape(5, 8)
    img = tw.map(lambda x: x * 2, tw.map(shifted, tw.open(a)))
    np.testing.assert_array_equal(img.compute(executor="processes", workers=2, tile=4),
                                  (a + offset) * 2)


def test_in_memory_input_reaches_processes_through_shared_memory(tmp_path):
    a = np.arange(64 * 64, dtype="float64").reshape(64, 64)
    img = tw.open(a)
    shipped = Pipeline.of([img]).with_sources(lambda s: s.for_processes())
    source = shipped.sources[0].source
    try:
        assert len(pickle.dumps(source)) < 2000
        np.testing.assert_array_equal(source.read(tw.regions.Box((0, 0), (64, 64))), a)
    finally:
        source.release()
    got = tw.map(correlate, img, margin=2, radius=2).compute(executor="processes", tile=16)
    np.testing.assert_array_equal(got, correlate(a, radius=2))


def test_progress_callback_and_first_tile_of_a_huge_plan(tmp_path):
    import zarr

    zarr.create_array(tmp_path / "in.zarr", shape=(16000, 16000), chunks=(512, 512),
                      dtype="float32", fill_value=1.0)

    class Stop(Exception):
        pass

    seen = []

    def progress(p):
        seen.append(p)
        raise Stop

    with pytest.raises(Stop):
        tw.save(tw.map(np.asarray, tw.open(tmp_path / "in.zarr"), margin=3),
                tmp_path / "out.zarr", tile=16, progress=progress)
    assert seen[0].done == 1 and seen[0].total == 1000 * 1000
    assert not os.path.exists(tmp_path / "out.zarr")
    assert os.path.exists(tmp_path / "out.zarr.partial")  # kept, to resume


def test_the_probe_does_not_charge_what_an_op_does_once_per_process(tmp_path):
    """An op's first call may import its library or compile a kernel: a warm-up tile runs
    untraced, so 50 MB allocated once are not taken for 760 bytes per probe pixel."""
    from tilewise.run import plan

    kept = []

    def first_call_allocates(a):
        if not kept:
            kept.append(np.ones(50_000_000 // 8))
        return a + 1

    img = tw.map(first_call_allocates, tw.open(np.zeros((1024, 1024))))
    planned = plan(img, tmp_path / "out.zarr", executor="serial", memory=above_resident("1GiB"))
    assert planned.plan.bytes_per_pixel < 100

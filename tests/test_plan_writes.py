"""Tiles shaped for the output's writes: a `.npy` output takes a write per row of a tile, so
full-width tiles (each band one write) are taken where the halo they add costs less than the
writes they save (`plan.choose`); outputs written a chunk at a time keep square-ish tiles."""

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

import tilewise as tw
from tilewise import library
from tilewise import plan as planning
from tilewise.io.npy import Layout, NpySink
from tilewise.pipeline import Pipeline
from tilewise.regions import Box
from tilewise.run import plan


@pytest.fixture(scope="module")
def dem(tmp_path_factory):
    path = tmp_path_factory.mktemp("writes") / "dem.zarr"
    arr = zarr.create_array(path, shape=(1024, 1024), chunks=(256, 256), dtype="float32")
    arr[:] = np.random.default_rng(0).random((1024, 1024), "float32") * 50
    return path


def test_a_banded_npy_output_is_written_in_full_width_tiles(dem, tmp_path):
    shades = library.multi_hillshade(tw.open(dem))  # 16 bands, a 3 x 3 halo
    to_npy = plan(shades, tmp_path / "h.npy", executor="threads", workers=2, memory="4GiB")
    assert to_npy.plan.grid.tile[-1] == 1024
    # Threads share one cache of decoded blocks, so strips may be thinner than a block.
    assert to_npy.plan.grid.tile[-2] < 256
    to_zarr = plan(shades, tmp_path / "h.zarr", executor="threads", workers=2, memory="4GiB")
    assert to_zarr.plan.grid.tile[-1] < 1024
    report = tw.save(shades, tmp_path / "h.npy", executor="threads", workers=2,
                     memory="4GiB", progress=False)
    assert report.tile["x"] == 1024
    np.testing.assert_array_equal(np.load(tmp_path / "h.npy"),
                                  tw.compute(shades, tile=shades.shape, executor="serial"))


@pytest.mark.parametrize("height", [1024, 1000])
def test_worker_processes_take_strips_of_whole_blocks(dem, tmp_path, height):
    """Each process has its own cache: a block split between strips in several processes
    would be decoded in each (evening the strips out over 1000 rows keeps them whole blocks)."""
    shades = library.multi_hillshade(tw.open(dem)[:height])
    planned = plan(shades, tmp_path / "h.npy", executor="processes", workers=2,
                   memory="4GiB")
    assert planned.plan.grid.tile[-1] == 1024
    assert planned.plan.grid.tile[-2] % 256 == 0


def test_a_wide_halo_outweighs_the_writes_a_strip_saves(dem):
    pipeline = Pipeline.of([tw.Op(np.copy, margin=100)(tw.open(dem))])

    def chosen(seconds_per_pixel: float) -> tuple[int, ...]:
        return planning.choose(
            pipeline, probe=planning.Probe(8.0, 0.0, seconds_per_pixel), unit=(1, 1),
            budget=2**30, workers=2, queued=0, out_bytes_per_pixel=4.0, tile=None,
            block=None, write_count=lambda box: 1 if box.shape[1] == 1024 else box.shape[0]
        ).grid.tile

    assert chosen(0.0)[1] == 1024  # computing is free: the writes decide
    assert chosen(1e-6)[1] < 1024  # 1 us a pixel: the strips' halos cost more


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_npy_writes_are_its_contiguous_runs(data):
    shape = tuple(data.draw(st.lists(st.integers(1, 9), min_size=1, max_size=4)))
    start = tuple(data.draw(st.integers(0, n - 1)) for n in shape)
    stop = tuple(data.draw(st.integers(a + 1, n)) for a, n in zip(start, shape, strict=True))
    box = Box(start, stop)
    sink = NpySink("x.npy", shape, np.dtype("float32"), tuple("abcd"[:len(shape)]),
                   tuple(1 for _ in shape))
    assert sink.writes(box) == len(Layout(shape, np.dtype("float32"), False, 128).runs(box)[0])

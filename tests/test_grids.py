"""Ops whose output grid differs from their input's, and outputs on several grids at once."""

import numpy as np
import pytest
import rasterio
import zarr
from conftest import above_resident, data_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opslib import block_sum, correlate, double, flip_rows, flipped_rows, minimum, rebin, upsample

import tilewise as tw
from tilewise.pipeline import Pipeline
from tilewise.plan import read_pixels
from tilewise.regions import AxisMap, TileGrid

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def make(shape, seed=0):
    return np.random.default_rng(seed).integers(-50, 50, shape).astype("float64")


@pytest.mark.parametrize("m, span", [
    (AxisMap(0, num=4), [(0, 1, 0, 4), (1, 2, 4, 8), (2, 3, 8, 10)]),
    (AxisMap(0, den=2), [(0, 1, 0, 1), (1, 2, 0, 1), (3, 7, 1, 4)]),
    (AxisMap(0, margin=2), [(0, 1, 0, 3), (4, 6, 2, 8)]),
    (AxisMap(0, num=3, margin=1), [(0, 1, 0, 4), (1, 2, 2, 7)]),
])
def test_axis_maps_follow_the_formula(m, span):
    """Output o needs input [floor(o num / den) - margin, ceil((o + 1) num / den) + margin)."""
    for a, b, lo, hi in span:
        assert m.needs(a, b, 10) == (lo, hi)


@SETTINGS
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 20), st.integers(1, 20),
       st.integers(0, 3), st.integers(0, 2), st.sampled_from(["serial", "threads"]))
def test_rebin_and_upsample_chained_with_local_ops(h, w, ty, tx, r1, r2, executor):
    a = make((3 * h + h % 3, 2 * w + 1))
    img = tw.open(a)
    chain = double(tw.map(minimum, rebin(tw.map(correlate, img, margin=r1, radius=r1)),
                          margin=r2, radius=r2))
    expected = upsample(minimum(block_sum(correlate(a, radius=r1)), radius=r2))
    assert chain.shape == expected.shape
    got = chain.compute(executor=executor, workers=2, tile={"y": ty, "x": tx})
    np.testing.assert_array_equal(got, expected, strict=True)


def test_resampling_ops_in_processes():
    a = make((61, 47), seed=1)
    got = double(rebin(tw.map(correlate, tw.open(a), margin=2, radius=2))).compute(
        executor="processes", workers=2, tile=5)
    np.testing.assert_array_equal(got, upsample(block_sum(correlate(a, radius=2))), strict=True)


@SETTINGS
@given(st.integers(4, 60), st.integers(4, 60), st.integers(1, 6), st.integers(0, 3))
def test_a_dem_and_its_rebinning_in_one_pass(tmp_path_factory, h, w, k, r):
    """Two outputs on two grids, tiles planned on the finer one and mapped to the coarser."""
    out = tmp_path_factory.mktemp("mixed")
    a = make((h, w), seed=2)
    smooth = tw.map(correlate, tw.open(a), margin=r, radius=r)
    coarse = rebin(smooth)
    report = tw.save([coarse, smooth], [out / "coarse.zarr", out / "fine.npy"],
                     tile={"y": 3 * k, "x": 2 * k}, workers=2)
    assert report.tile == {"y": min(h, 3 * k), "x": min(w, 2 * k)}
    ref = correlate(a, radius=r)
    np.testing.assert_array_equal(np.load(out / "fine.npy"), ref, strict=True)
    np.testing.assert_array_equal(zarr.open_array(out / "coarse.zarr")[:], block_sum(ref),
                                  strict=True)


def test_a_tile_that_splits_a_coarse_pixel_is_refused(tmp_path):
    a = make((30, 30))
    with pytest.raises(tw.ParameterError, match=r"whole pixels.*multiple of 3"):
        tw.save([tw.open(a), rebin(tw.open(a))], [tmp_path / "a.npy", tmp_path / "b.npy"],
                tile=8)


def test_planned_tiles_cover_whole_chunks_of_every_grid(tmp_path):
    """Zarr chunks of 512 on the coarse grid need driving tiles in multiples of 4 x 512."""
    a = np.zeros((5000, 4100), "float32")
    four = tw.op(lambda x: x.reshape(x.shape[0] // 4, 4, x.shape[1] // 4, 4).mean((1, 3)),
                 factor=4, shape=lambda s: (s["y"] // 4, s["x"] // 4), name="mean4")
    report = tw.save([tw.open(a), four(tw.open(a))], [tmp_path / "f.zarr", tmp_path / "c.zarr"],
                     memory=above_resident("2GiB"), workers=2)
    chunks = zarr.open_array(tmp_path / "c.zarr").chunks
    assert all(t % (4 * c) == 0 or t == n for t, c, n in
               zip(report.tile.values(), chunks, a.shape, strict=True))


def test_unrelated_grids_are_refused():
    with pytest.raises(tw.GridMismatchError, match="save them in separate calls"):
        tw.save([tw.open(np.ones((4, 4))), tw.open(np.ones((3, 4)))], ["a.npy", "b.npy"])


def test_a_dem_and_its_rebinning_as_geotiffs_keep_their_georeference(tmp_path):
    dem = tw.open(data_path("dem", "srtm90.tif"))
    four = tw.op(lambda x: x.reshape(x.shape[0] // 4, 4, x.shape[1] // 4, 4).mean((1, 3)),
                 factor=4, dtype="float32", shape=lambda s: (s["y"] // 4, s["x"] // 4),
                 name="mean4")
    coarse = four(dem)
    assert coarse.meta["transform"].a == 4 * dem.meta["transform"].a
    assert coarse.meta["transform"].c == dem.meta["transform"].c
    tw.save([dem, coarse], [tmp_path / "dem.tif", tmp_path / "dem4.tif"],
            memory=above_resident("512MiB"))
    whole = dem.compute()
    h, w = whole.shape[0] // 4 * 4, whole.shape[1] // 4 * 4
    expected = whole[:h, :w].reshape(h // 4, 4, w // 4, 4).mean((1, 3)).astype("float32")
    with rasterio.open(tmp_path / "dem4.tif") as ds:
        np.testing.assert_array_equal(ds.read(1), expected)
        assert ds.transform == coarse.meta["transform"]
    with rasterio.open(tmp_path / "dem.tif") as ds:
        np.testing.assert_array_equal(ds.read(1), whole)


def test_ops_may_drop_add_and_rename_axes():
    a = make((3, 20, 30), seed=3)
    img = tw.open(a, axes="cyx")
    total = tw.map(lambda x: x.sum(axis=0), img, axes="yx", name="band_sum")
    stacked = tw.map(lambda x: np.stack([x, -x]), total, axes="tyx", shape={"t": 2},
                     name="pm")
    renamed = tw.map(np.asarray, img, axes={"band": "c", "y": "y", "x": "x"})
    assert total.axes == ("y", "x") and stacked.shape == (2, 20, 30)
    assert renamed.axes == ("band", "y", "x")
    np.testing.assert_array_equal(total.compute(tile=7), a.sum(0))
    np.testing.assert_array_equal(stacked.compute(tile={"t": 1, "y": 6, "x": 9}),
                                  np.stack([a.sum(0), -a.sum(0)]))
    np.testing.assert_array_equal(renamed.compute(tile=8), a)


@pytest.mark.parametrize("executor", ["serial", "threads", "processes"])
def test_an_op_with_a_footprint_function(executor):
    a = make((23, 17), seed=4)
    img = tw.open(a)
    flipped = tw.map(flip_rows, img, footprint=flipped_rows(a.shape))
    got = tw.map(correlate, flipped, margin=1, radius=1).compute(executor=executor, tile=5)
    np.testing.assert_array_equal(got, correlate(a[::-1], radius=1), strict=True)


def test_read_pixels_of_a_band_slice():
    """One band of a 3 x 100 x 200 image reads 100 x 200 pixels, not 400."""
    img = tw.open(np.zeros((3, 100, 200)), axes="cyx")
    band = tw.map(np.asarray, img[1])
    pipeline = Pipeline.of([band])
    assert read_pixels(pipeline, TileGrid((100, 200), (32, 64))) == 20_000


def test_read_pixels_counts_halos_and_resampling():
    a = np.zeros((64, 64))
    img = tw.map(np.asarray, tw.open(a), margin=2)
    # Each tile reads 2 pixels beyond the edge it shares; none beyond the image's edges.
    assert read_pixels(Pipeline.of([img]), TileGrid((64, 64), (32, 32))) == (64 + 4) ** 2
    four = tw.map(lambda x: x[::4, ::4], tw.open(a), factor=4)
    assert read_pixels(Pipeline.of([four]), TileGrid((16, 16), (4, 4))) == 64 * 64


def test_read_pixels_of_a_footprint_visits_tiles():
    a = np.zeros((40, 10))
    flipped = tw.map(flip_rows, tw.open(a), footprint=flipped_rows(a.shape), margin=0)
    assert read_pixels(Pipeline.of([flipped]), TileGrid((40, 10), (8, 10))) == 400


def test_plan_describes_mixed_grids_and_slices(tmp_path):
    from tilewise.run import plan
    from tilewise.summary import describe

    img = tw.open(np.zeros((3, 120, 90), "float32"), axes="cyx")
    band = tw.map(correlate, img[0], margin=2, radius=2)
    lines = describe(plan([band, rebin(band)], [tmp_path / "b.zarr", tmp_path / "r.zarr"],
                          memory=above_resident("256MiB"), tile={"y": 60, "x": 30}))
    text = "\n".join(lines)
    assert "output r.zarr: 40 x 45" in text
    assert "tiles      60 x 30  (2 x 3 = 6 tiles)" in text
    # One band is read, with a halo of 2 where tiles meet: rows 2 x 62, columns 32 + 34 + 32.
    assert "halo       up to 2 pixels; read / written = 1.125 (12,152 / 10,800 pixels)" in text

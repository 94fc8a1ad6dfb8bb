"""Microscopy ops and per-axis work: tiled equals whole (bit for bit, or within the stated
tolerance for non-local means), against scikit-image and SciPy on the whole array."""

import numpy as np
import pytest
import tifffile
import zarr
from conftest import above_resident, data_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opslib import correlate
from scipy import ndimage
from skimage import restoration

import tilewise as tw
from tilewise import library as ops
from tilewise.run import plan

FEW = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: Hypothesis draws these; one test runs every op in processes (a process pool per example
#: would cost more than the ops).
EXECUTORS = st.sampled_from(["serial", "threads"])


def each_volume(func, a, loops):
    """`func` on every volume of `a` along its first `loops` axes, stacked back."""
    out = None
    for index in np.ndindex(*a.shape[:loops]):
        v = func(a[index])
        out = np.empty(a.shape[:loops] + v.shape, v.dtype) if out is None else out
        out[index] = v
    return out


@st.composite
def stacks(draw, axes="tczyx", dtype="uint16", most=(2, 2, 7, 28, 28)):
    sizes = dict(zip("tczyx", most, strict=True))
    shape = tuple(draw(st.integers(1 if a in "tc" else 3, sizes[a])) for a in axes)
    tile = {a: draw(st.integers(1 if a in "tcz" else max(1, n // 3), n))
            for a, n in zip(axes, shape, strict=True)}
    seed = draw(st.integers(0, 2**32 - 1))
    a = np.random.default_rng(seed).integers(0, 4000, shape).astype(dtype)
    return a, tile


def test_denoise_nl_means_tiled_within_1e_5_of_whole_on_real_nuclei():
    """The stated tolerance: 1e-5 relative (the fast mode's running sums round differently
    when a window starts elsewhere); in practice tiles give the whole image's values."""
    a = tifffile.imread(data_path("microscopy", "nuclei.tif"))[24:34, 80:150, 60:140]
    image = ops.denoise_nl_means(tw.open(a, axes="zyx"), h=900.0, patch_size=3,
                                 patch_distance=3)
    got = image.compute(tile={"z": 5, "y": 24, "x": 32}, executor="threads", workers=2)
    want = restoration.denoise_nl_means(a.astype("float64"), patch_size=3, patch_distance=3,
                                        h=900.0).astype("float32")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=0)


@FEW
@given(stacks(axes="cyx", most=(1, 2, 1, 40, 40)), EXECUTORS, st.booleans())
def test_denoise_nl_means_per_channel_in_2d(case, executor, fast):
    a, tile = case
    image = ops.denoise_nl_means(tw.open(a, axes="cyx"), h=500.0, sigma=100.0, patch_size=5,
                                 patch_distance=2, fast_mode=fast)
    got = image.compute(tile=tile, executor=executor, workers=2)

    def plane(p):
        return restoration.denoise_nl_means(p.astype("float64"), patch_size=5,
                                            patch_distance=2, h=500.0, sigma=100.0,
                                            fast_mode=fast).astype("float32")

    np.testing.assert_allclose(got, each_volume(plane, a, 1), rtol=1e-5, atol=0)


@FEW
@given(stacks(), EXECUTORS, st.integers(1, 6))
def test_denoise_tv_with_fixed_iterations_is_bit_for_bit(case, executor, iterations):
    a, tile = case
    image = ops.denoise_tv(tw.open(a, axes="tczyx"), weight=200.0, iterations=iterations)
    got = image.compute(tile=tile, executor=executor, workers=2)

    def volume(v):
        return restoration.denoise_tv_chambolle(v.astype("float32"), weight=200.0, eps=0.0,
                                                max_num_iter=iterations)

    np.testing.assert_array_equal(got, each_volume(volume, a, 2), strict=True)


@FEW
@given(stacks(axes="czyx", most=(1, 2, 6, 30, 30)), EXECUTORS, st.sampled_from([None, "yx"]),
       st.floats(1.0, 6.0))
def test_subtract_background_is_bit_for_bit(case, executor, over, radius):
    a, tile = case
    image = ops.subtract_background(tw.open(a, axes="czyx"), radius=radius, over=over)
    got = image.compute(tile=tile, executor=executor, workers=2)

    def volume(v):
        v = v.astype("float32")
        return v - restoration.rolling_ball(v, radius=radius)

    np.testing.assert_array_equal(got, each_volume(volume, a, 1 if over is None else 2),
                                  strict=True)


@FEW
@given(stacks(), EXECUTORS)
def test_anisotropic_gaussian_and_median_over_tczyx(case, executor):
    a, tile = case
    sigma = {"z": 0.7, "y": 1.6, "x": 1.2}
    got = ops.gaussian(tw.open(a, axes="tczyx"), sigma=sigma).compute(
        tile=tile, executor=executor, workers=2)
    want = ndimage.gaussian_filter(a.astype("float32"), (0.7, 1.6, 1.2), mode="nearest",
                                   truncate=4.0, axes=(2, 3, 4))
    np.testing.assert_array_equal(got, want, strict=True)
    got = ops.median(tw.open(a, axes="tczyx"), size={"z": 3, "y": 5, "x": 5}).compute(
        tile=tile, executor=executor, workers=2)
    want = ndimage.median_filter(a, size=(3, 5, 5), mode="nearest", axes=(2, 3, 4))
    np.testing.assert_array_equal(got, want, strict=True)


@pytest.mark.parametrize("tile", [None, {"c": 1, "y": 9}])
def test_normalize_channels_uses_each_channels_exact_percentiles(tile):
    rng = np.random.default_rng(5)
    a = rng.gamma(2.0, 300.0, (3, 4, 40, 30)).astype("uint16")
    a[1] *= 3
    image = tw.map(lambda v: v, tw.open(a, axes="czyx"), meta={"nodata": 0})
    got = ops.normalize_channels(image, percentiles=(2, 99.5), clip=True).compute(tile=tile)
    for c in range(3):
        x = a[c].astype("float64")
        x[a[c] == 0] = np.nan
        low, high = np.nanpercentile(x, [2, 99.5])
        want = np.clip((x - low) / (high - low), 0, 1).astype("float32")
        np.testing.assert_array_equal(got[c], want, strict=True)


def zyx_correlate(v, *, radii):
    """A zyx-only function: it refuses anything but a volume."""
    assert v.ndim == 3, v.shape
    weights = np.ones([2 * r + 1 for r in radii]) / 7
    return ndimage.correlate(v, weights, mode="mirror")


@settings(max_examples=8, deadline=None)
@given(stacks(dtype="float64"), EXECUTORS, st.data())
def test_zyx_function_runs_over_every_t_and_c_with_per_axis_margins(case, executor, data):
    a, tile = case
    radii = tuple(data.draw(st.integers(0, 3)) for _ in "zyx")
    margin = dict(zip("zyx", radii, strict=True))
    image = tw.map(zyx_correlate, tw.open(a, axes="tczyx"), margin=margin, over="zyx",
                   radii=radii)
    got = image.compute(tile=tile, executor=executor, workers=2)
    want = each_volume(lambda v: zyx_correlate(v, radii=radii), a, 2)
    np.testing.assert_array_equal(got, want, strict=True)


def test_over_with_an_integer_margin_spans_its_axes_and_sees_its_own_tile():
    a = np.random.default_rng(6).integers(0, 9, (2, 5, 30, 20)).astype("int32")

    @tw.op(margin=2, over="yx")
    def planes(v, *, tile):
        assert v.ndim == 2 and tile.axes == ("y", "x") and len(tile.window.start) == 2
        return correlate(v, radius=2)

    got = planes(tw.open(a, axes="czyx")).compute(tile={"z": 2, "y": 7, "x": 8})
    np.testing.assert_array_equal(got, each_volume(lambda p: correlate(p, radius=2), a, 2),
                                  strict=True)


@pytest.mark.parametrize("call,message", [
    (lambda img: tw.map(np.asarray, img, over="zyq"),
     r"over='zyq' of op 'asarray' must name distinct axes"),
    (lambda img: tw.map(np.asarray, img, over="zyx", margin={"t": 1}),
     r"runs over 'zyx' once per 't', so it cannot have a margin of 1 along 't'"),
    (lambda img: tw.map(np.asarray, img, over="zyx", factor={"c": 2}),
     r"cannot have a factor of 2 along 'c'"),
    (lambda img: ops.denoise_nl_means(img, h=1.0, over="x"),
     r"op 'denoise_nl_means' runs over 2 to 4 axes, not 1 \(x\)"),
    (lambda img: ops.denoise_tv(img, weight=1.0, iterations=0),
     r"iterations of op 'denoise_tv' must be a positive integer, not 0"),
    (lambda img: ops.gaussian(img, sigma={"q": 1.0}), r"sigma of op 'gaussian' must name axes"),
    (lambda img: ops.normalize_channels(img, percentiles=(50, 5)),
     r"percentiles of op 'normalize_channels'"),
])
def test_bad_parameters_are_named(call, message):
    with pytest.raises(tw.ParameterError, match=message):
        call(tw.open(np.zeros((1, 2, 3, 8, 8), "uint16"), axes="tczyx"))


def test_tiles_per_axis_follow_source_blocks_and_output_chunks(tmp_path):
    """Whole channels, a few planes, large y and x: the planned tile is whole blocks of the
    source (a chunked Zarr stack) and whole chunks of the OME-Zarr output."""
    store = tmp_path / "stack.zarr"
    z = zarr.create_array(store, shape=(2, 3, 24, 300, 300), chunks=(1, 1, 3, 96, 96),
                          dtype="uint16", dimension_names=list("tczyx"))
    z[...] = 7
    image = ops.gaussian(tw.open(str(store)), sigma={"z": 1.0, "y": 2.0, "x": 2.0})
    planned = plan(image, tmp_path / "out.ome.zarr", memory=above_resident("512MiB"),
                   workers=2)
    tile = dict(zip("tczyx", planned.plan.grid.tile, strict=True))
    # Source blocks of 3 planes, output chunks of 4: tiles of 12; y and x whole (300 < 768,
    # the least multiple of both 96 and 256).
    assert tile["t"] == 1 and tile["c"] == 3 and tile["z"] in (12, 24)
    assert tile["y"] == tile["x"] == 300
    given = plan(image, tmp_path / "out.ome.zarr", tile={"z": 4, "y": 256, "x": 300})
    assert given.plan.grid.tile == (1, 3, 4, 256, 300)


def test_every_microscopy_op_in_processes(tmp_path):
    a = np.random.default_rng(7).integers(0, 4000, (2, 2, 5, 40, 36)).astype("uint16")
    image = tw.open(a, axes="tczyx")
    outputs = {
        "tv": (ops.denoise_tv(image, weight=150.0, iterations=3),
               lambda v: restoration.denoise_tv_chambolle(v.astype("float32"), weight=150.0,
                                                          eps=0.0, max_num_iter=3)),
        "background": (ops.subtract_background(image, radius=3.5),
                       lambda v: v - restoration.rolling_ball(v.astype("float32"), radius=3.5)),
        "nl": (ops.denoise_nl_means(image, h=600.0, patch_size=3, patch_distance=2),
               lambda v: restoration.denoise_nl_means(v.astype("float64"), patch_size=3,
                                                      patch_distance=2, h=600.0)),
        "over": (tw.map(zyx_correlate, image, margin={"z": 1, "y": 2, "x": 2}, over="zyx",
                        radii=(1, 2, 2)),
                 lambda v: zyx_correlate(v.astype("uint16"), radii=(1, 2, 2))),
    }
    paths = [tmp_path / f"{name}.npy" for name in outputs]
    tw.save([img for img, _ in outputs.values()], paths, executor="processes", workers=2,
            tile={"t": 1, "z": 3, "y": 16, "x": 20})
    for path, (img, whole) in zip(paths, outputs.values(), strict=True):
        want = each_volume(whole, a, 2).astype(img.dtype)
        np.testing.assert_allclose(np.load(path), want, rtol=1e-5 if "nl" in path.name else 0,
                                   atol=0, err_msg=path.name)


def reach(func, size=31):
    """The farthest distance (along an axis or a diagonal) at which changing one input pixel
    changes the centre pixel of `func`'s output."""
    a = np.random.default_rng(8).random((size, size))
    centre = size // 2
    base = func(a)[centre, centre]
    farthest = -1
    for r in range(centre):
        for dy, dx in ((r, 0), (0, -r), (r, r), (-r, r)):
            b = a.copy()
            b[centre + dy, centre + dx] += 1.0
            if func(b)[centre, centre] != base:
                farthest = r
    return farthest


@pytest.mark.parametrize("fast", [True, False])
def test_nl_means_reads_patch_distance_plus_half_a_patch(fast):
    assert reach(lambda v: restoration.denoise_nl_means(
        v, patch_size=5, patch_distance=3, h=0.3, fast_mode=fast)) == 3 + 5 // 2


def test_tv_moves_information_one_pixel_per_iteration():
    assert reach(lambda v: restoration.denoise_tv_chambolle(v, weight=0.2, eps=0.0,
                                                            max_num_iter=6)) == 6 - 1

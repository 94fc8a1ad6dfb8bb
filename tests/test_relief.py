"""The relief visualisations against RVT (`rvt.vis`, `rvt.blend_func`) on the real 1 m lidar
DEM, with and without NaN holes: RVT on the whole array, tilewise in small tiles, image edges
included. Where RVT is wrong (docs/relief.md), the reference is derived from RVT's own
functions and the docstring says how.

Tolerances: angles (degrees) within 1e-5 absolute, or four float32 units where that is larger:
RVT computes in float32 (the tangent, the angle in radians, then in degrees) and lands up to
three units from the exact angle (1.03e-5 degrees near 60 degrees with ve_factor 2.5, where a
unit is 3.8e-6; near 180 a unit is 1.5e-5), while tilewise rounds the exact angle once; other
values within 1e-5
relative, plus 1e-6 absolute for values in [0, 1] (RVT's float32 hillshade loses that much
where its two terms cancel). Then tiled equals whole, bit for bit, for every op.
"""

import subprocess
import sys
from pathlib import Path

import matplotlib
import matplotlib.cm
import numpy as np
import pytest
import rasterio
import rvt.vis
from affine import Affine
from conftest import data_path
from hypothesis import given, settings
from hypothesis import strategies as st

import tilewise as tw
from tilewise import library as ops
from tilewise.regions import Box

# rvt.blend_func imports matplotlib.cm.get_cmap, which matplotlib 3.9 removed; the test gives
# it the same function under its old name (the library itself uses matplotlib.colormaps).
matplotlib.cm.get_cmap = matplotlib.colormaps.get_cmap
import rvt.blend_func as rvt_blend  # noqa: E402

#: The crop of the 1000 x 1000 lidar tile the tests run on: fast, with real relief.
CROP = (slice(300, 500), slice(400, 640))
TILE = {"y": 64, "x": 48}
FILES = {"lidar": "lidar_TM1_564_146.tif", "lidar_nan": "lidar_TM1_564_146_nodata.tif"}
EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture(params=FILES, scope="module")
def dem(request):
    """The tilewise image of the crop and the crop as a float32 array (NaN holes)."""
    path = data_path("dem", FILES[request.param])
    with rasterio.open(path) as ds:
        a = ds.read(1)[CROP]
    assert np.isnan(a).any() == (request.param == "lidar_nan")
    return tw.open(path)[CROP], a


def tiled(image, executor="threads"):
    tile = TILE if image.ndim == 2 else {"c": image.shape[0], **TILE}
    return image.compute(tile=tile, executor=executor, workers=2)


def whole(image):
    return image.compute(tile=image.shape, executor="serial")


def assert_rvt_close(got, expected, angle=False, unit=False):
    expected = np.asarray(expected, dtype=np.float64)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    ok = np.isfinite(expected)
    got, expected = got[ok].astype(np.float64), expected[ok]
    if angle:
        limit = np.maximum(1e-5, 4 * np.spacing(abs(expected).astype(np.float32)))
    else:
        limit = 1e-5 * abs(expected) + (1e-6 if unit else 0)
    excess = abs(got - expected) - limit
    assert excess.max() <= 0, f"{(excess > 0).sum()} pixels off, worst by {excess.max():g}"


# ---- the 3 x 3 ops ---------------------------------------------------------------------------


@pytest.mark.parametrize("units", ["degree", "percent", "radian"])
def test_slope_and_aspect_are_rvts(dem, units):
    image, a = dem
    expected = rvt.vis.slope_aspect(a.copy(), 1, 1, output_units=units)
    assert_rvt_close(tiled(ops.slope(image, units=units)), expected["slope"],
                     angle=units == "degree")
    aspect_units = "degree" if units == "degree" else "radian"
    assert_rvt_close(tiled(ops.aspect(image, units=aspect_units)), expected["aspect"],
                     angle=units == "degree")


def test_vertical_exaggeration_is_rvts_ve_factor(dem):
    image, a = dem
    expected = rvt.vis.slope_aspect(a.copy(), 1, 1, output_units="degree", ve_factor=2.5)
    assert_rvt_close(tiled(ops.slope(image, ve_factor=2.5)), expected["slope"], angle=True)


@pytest.mark.parametrize("azimuth,elevation", [(315, 35), (90, 15), (200, 60)])
def test_hillshade_is_rvts(dem, azimuth, elevation):
    image, a = dem
    expected = rvt.vis.hillshade(a.copy(), 1, 1, sun_azimuth=azimuth, sun_elevation=elevation)
    got = tiled(ops.hillshade(image, azimuth=azimuth, elevation=elevation))
    assert_rvt_close(got, expected, unit=True)


def test_multi_hillshade_is_rvts_hillshade_per_direction_not_its_cropped_stack(dem):
    """RVT's `multi_hillshade` returns (directions, rows - 2, columns - 2): it pads the DEM for
    each direction's `hillshade` but hands it slope and aspect of the unpadded one, then crops
    the padding off what is already the unpadded size. Its interior is right; the reference for
    every pixel is RVT's `hillshade` from each of its azimuths."""
    image, a = dem
    got = tiled(ops.multi_hillshade(image, directions=8, elevation=30))
    cropped = rvt.vis.multi_hillshade(a.copy(), 1, 1, nr_directions=8, sun_elevation=30)
    assert cropped.shape == (8, a.shape[0] - 2, a.shape[1] - 2)
    assert_rvt_close(got[:, 1:-1, 1:-1], cropped, unit=True)
    per_direction = [rvt.vis.hillshade(a.copy(), 1, 1, sun_azimuth=45 * i, sun_elevation=30)
                     for i in range(8)]
    assert_rvt_close(got, np.array(per_direction), unit=True)


def test_rgb_multi_hillshade_is_rvts_three_azimuths(dem):
    """RVT's blender and 8-bit multi-direction hillshade: red, green, blue lit from 315, 22.5
    and 90 degrees (`rvt.blend.BlenderCombination.render_all_images`)."""
    image, a = dem
    got = tiled(ops.multi_hillshade_rgb(image, elevation=35))
    expected = [rvt.vis.hillshade(a.copy(), 1, 1, sun_azimuth=az, sun_elevation=35)
                for az in (315, 22.5, 90)]
    assert_rvt_close(got, np.array(expected), unit=True)


# ---- the relief models -----------------------------------------------------------------------


@pytest.mark.parametrize("radius", [10, 20])
def test_slrm_is_rvts(dem, radius):
    image, a = dem
    assert_rvt_close(tiled(ops.slrm(image, radius=radius)), rvt.vis.slrm(a.copy(), radius))


def test_msrm_is_rvts(dem):
    image, a = dem
    expected = rvt.vis.msrm(a.copy(), 1.0, 0, 20, 2)
    assert_rvt_close(tiled(ops.msrm(image)), expected)


def test_msrm_halo_follows_the_pixel_size():
    """RVT's tiled processing gives MSRM a halo of feature_max pixels (20); the filters reach
    n^2 pixels, n = ceil(sqrt((20 - 0.25) / 0.5)) = 7: 49 pixels on 0.25 m pixels, so RVT's
    tiles are wrong there. tilewise's halo is 49 and its small tiles give RVT's whole array."""
    path = data_path("dem", FILES["lidar"])
    with rasterio.open(path) as ds:
        a = ds.read(1)[200:340, 300:420]
    image = tw.open(a, meta={"transform": Affine(0.25, 0, 0, 0, -0.25, 0)})
    radii = ops.terrain.msrm_radii(0, 20, 2, 0.25)
    assert radii[-1] == 49
    assert ops.msrm(image).node.margin == (49, 49)
    expected = rvt.vis.msrm(a.copy(), 0.25, 0, 20, 2)
    assert_rvt_close(tiled(ops.msrm(image)), expected)


#: Scales for MSTP that fit the crop (RVT's defaults reach 2023 pixels).
SCALES = {"local_scale": (1, 5, 2), "meso_scale": (6, 16, 5), "broad_scale": (20, 60, 20)}


def test_mstp_is_rvts_deviation_in_float64(dem):
    """RVT's `mstp` squares the float32 DEM in float32 (z^2 ~ 1e5 m^2 keeps ~0.008 m^2) and
    takes variances as differences of integral images of the whole padded array: on this crop
    its colours are off by up to 0.45 where the ground is flat. The reference is RVT's own
    `max_elevation_deviation` given the DEM in float64, less its mean (the deviation does not
    change when every elevation moves by the same height), then RVT's colour formula."""
    image, a = dem
    got = tiled(ops.mstp(image, **SCALES, lightness=1.2))
    z = a.astype(np.float64) - np.nanmean(a)
    order = ("broad_scale", "meso_scale", "local_scale")  # red, green, blue
    deviation = np.array([rvt.vis.max_elevation_deviation(z.copy(), *SCALES[s]) for s in order])
    expected = np.clip(1 - np.exp(-1.2 * abs(deviation.astype(np.float64))), 0, 1)
    assert_rvt_close(got, expected)
    as_shipped = rvt.vis.mstp(a.copy(), **SCALES)
    assert np.nanmax(abs(as_shipped - got)) > 0.01  # the float32 squares, documented


def test_inputs_are_never_modified_and_numeric_nodata_is_rvts(dem):
    """RVT's `hillshade(no_data=...)` writes NaN into the caller's array before copying it;
    tilewise reads a nodata value from the image and leaves every array as it was."""
    _, a = dem
    raw = np.where(np.isnan(a), -9999, a).astype(np.float32)
    kept = raw.copy()
    image = tw.open(raw, meta={"transform": Affine(1, 0, 0, 0, -1, 0), "nodata": -9999})
    for op in (ops.hillshade(image), ops.slrm(image), ops.mstp(image, **SCALES)):
        tiled(op)
    np.testing.assert_array_equal(raw, kept)
    expected = rvt.vis.hillshade(raw.copy(), 1, 1, no_data=-9999)
    assert_rvt_close(tiled(ops.hillshade(image)), expected, unit=True)
    mutated = raw.copy()
    rvt.vis.hillshade(mutated, 1, 1, no_data=-9999)
    assert np.isnan(mutated).sum() == np.isnan(a).sum()  # RVT's side effect, documented


# ---- tiled equals whole ----------------------------------------------------------------------

RELIEF_OPS = [
    (ops.slope, {}), (ops.aspect, {"units": "radian"}), (ops.hillshade, {"ve_factor": 3}),
    (ops.multi_hillshade, {"directions": 5}), (ops.multi_hillshade_rgb, {}),
    (ops.slrm, {"radius": 6}), (ops.msrm, {"feature_max": 12, "scaling_factor": 1}),
    (ops.mstp, {"local_scale": (1, 3, 1), "meso_scale": (4, 8, 2), "broad_scale": (9, 15, 6)}),
    # radii of 64 and more: whole blocks of rows between a box's top and bottom blocks
    (ops.slrm, {"radius": 70}),
    (ops.mstp, {"local_scale": (1, 3, 2), "meso_scale": (60, 66, 6),
                "broad_scale": (100, 230, 130)}),
]


@st.composite
def dem_and_tile(draw):
    shape = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    tile = (draw(st.integers(1, shape[0])), draw(st.integers(1, shape[1])))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = (rng.normal(0, 2, shape).cumsum(axis=0) + 300).astype("float32")
    for _ in range(draw(st.integers(0, 3))):
        a[rng.integers(shape[0]), rng.integers(shape[1])] = np.nan
    return a, tile


@pytest.mark.parametrize("op,params", RELIEF_OPS, ids=lambda p: getattr(p, "__name__", ""))
@settings(max_examples=8)
@given(case=dem_and_tile(), executor=st.sampled_from(["serial", "threads"]))
def test_relief_ops_tiled_equal_whole(op, params, case, executor):
    a, (ty, tx) = case
    image = op(tw.open(a), **params)
    tile = {"y": ty, "x": tx} if image.ndim == 2 else {"c": image.shape[0], "y": ty, "x": tx}
    np.testing.assert_array_equal(image.compute(tile=tile, executor=executor, workers=2),
                                  whole(image), strict=True)


def numpy_box_sums(a, r, mode):
    """Sums of values (NaN as 0), squares and valid pixels over (2r + 1)^2 boxes of `a`
    padded as RVT pads, by NumPy (sliding windows, float64)."""
    padded = np.pad(a.astype(np.float64), r, mode=mode)
    valid = ~np.isnan(padded)
    values = np.where(valid, padded, 0.0)
    window = np.lib.stride_tricks.sliding_window_view
    return [window(q, (2 * r + 1, 2 * r + 1)).sum(axis=(-2, -1))
            for q in (values, values * values, valid.astype(np.float64))]


@settings(max_examples=6, deadline=None)
@given(case=dem_and_tile(), radius=st.sampled_from([1, 4, 20, 63, 64, 90, 150]),
       radii=st.sampled_from([(1, 2), (5, 64, 65), (70, 140)]))
def test_box_kernels_equal_numpy_sums(case, radius, radii):
    """The streamed, block-aligned box sums (`box_sums`) against NumPy's sums over sliding
    windows: RVT's mean filter and largest deviation, on the whole image."""
    a, _ = case
    boxes = ops.terrain.box_kernels()
    tile = tw.TileInfo((0, 0), Box.of_shape(a.shape), Box.of_shape(a.shape), ("y", "x"), a.shape)
    nan = bool(np.isnan(a).any())
    padded = boxes.Padded.of(tile, radius, "edge")
    mean = np.empty(a.shape, np.float32)
    boxes.box_mean(a, padded.rows, padded.cols, padded.top, radius, radius, nan, False,
                   *boxes.scratch(padded, (radius,), 1 + nan), mean, 0)
    total, _, count = numpy_box_sums(a, radius, "edge")
    expected = np.where(np.isnan(a), np.nan, total / count).astype(np.float32)
    np.testing.assert_allclose(mean, expected, rtol=1e-6)
    padded = boxes.Padded.of(tile, max(radii), "symmetric")
    deviation = np.empty(a.shape)
    boxes.max_deviation(a, padded.rows, padded.cols, padded.top, max(radii),
                        np.array(radii), nan, *boxes.scratch(padded, radii, 2 + nan), deviation)
    centre = np.where(np.isnan(a), 0, a).astype(np.float64)
    best = None
    for r in radii:
        total, squares, count = numpy_box_sums(a, r, "symmetric")
        mean = total / count
        dev = (centre - mean) / (np.sqrt(abs(squares / count - mean * mean)) + 1e-6)
        best = dev if best is None else np.where(abs(best) >= abs(dev), best, dev)
    np.testing.assert_allclose(deviation, best, rtol=1e-6, atol=1e-6)


def test_relief_ops_in_processes_equal_whole(tmp_path):
    """Worker processes load the compiled kernels from numba's cache and give the same bits
    (all ops in one run: a process pool takes seconds to start)."""
    image = tw.open(data_path("dem", FILES["lidar_nan"]))[CROP]
    results = [op(image, **params) for op, params in RELIEF_OPS]
    paths = [tmp_path / f"{i}.npy" for i in range(len(results))]
    tw.save(results, paths, executor="processes", workers=2, tile={"y": 70, "x": 90})
    for result, path in zip(results, paths, strict=True):
        np.testing.assert_array_equal(np.load(path), whole(result), strict=True)


def test_kernels_are_compiled_when_the_op_is_built():
    """Before the probe tile measures memory: compiling there charges several times the real
    memory per pixel. Each op loads only its own kernels (numba's start is a fixed cost)."""
    code = ("import sys, numpy as np, tilewise as tw; from tilewise import library as ops\n"
            "dem = tw.open(np.zeros((5, 5), 'float32'))\n"
            "ops.slope(dem)\n"
            "assert 'tilewise.library.box_sums' not in sys.modules\n"
            "from tilewise.library import terrain_kernels\n"
            "assert terrain_kernels.gradient_kernel.overloads\n"
            "ops.slrm(dem, radius=2)\n"
            "from tilewise.library import box_sums\n"
            "assert box_sums.box_mean.overloads and box_sums.max_deviation.overloads\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- normalisation, colour maps, blending, 8 bits ----------------------------------------------


def layers(seed, *shapes):
    rng = np.random.default_rng(seed)
    out = []
    for shape in shapes:
        a = rng.random(shape).astype(np.float32)
        a.reshape(-1)[rng.integers(a.size, size=3)] = np.nan
        out.append(a)
    return out


def image_of(a):
    return tw.open(a, axes="yx" if a.ndim == 2 else "cyx")


@pytest.mark.parametrize("mode", ["value", "percent"])
def test_normalize_is_rvts_normalization(mode):
    """Percent cut-offs are exact percentiles of the whole image (a reduction), equal to RVT's
    `numpy.nanpercentile` on the whole array."""
    (a,) = layers(1, (70, 90))
    a = a * 40 - 5
    got = tiled(ops.normalize(image_of(a), minimum=2, maximum=30, mode=mode))
    expected = rvt_blend.advanced_normalization(a.copy(), 2, 30, "perc" if mode == "percent"
                                                else "value")
    assert_rvt_close(got, expected, unit=True)
    inverted = tiled(ops.normalize(image_of(a), minimum=2, maximum=30, mode=mode, invert=True))
    assert_rvt_close(inverted, 1 - expected, unit=True)


def test_percent_cut_offs_that_meet_fall_back_to_the_extremes():
    a = np.zeros((30, 40), np.float32)
    a[0, :3] = (-2, 5, 7)
    got = tiled(ops.normalize(image_of(a), minimum=1, maximum=1, mode="percent"))
    assert_rvt_close(got, rvt_blend.normalize_perc(a.copy(), 1, 1), unit=True)


def test_colormap_is_rvts_color_ramp():
    (a,) = layers(2, (50, 60))
    got = tiled(ops.colormap(image_of(a), cmap="terrain", min_cut=0.1, max_cut=0.9, alpha=True))
    expected = rvt_blend.gray_scale_to_color_ramp(a, "terrain", 0.1, 0.9, alpha=True,
                                                  output_8bit=False)
    assert_rvt_close(got, expected, unit=True)


SHAPES = {"single": ((50, 60), (50, 60)), "rgb": ((3, 50, 60), (3, 50, 60)),
          "single on rgb": ((50, 60), (3, 50, 60)), "rgb on single": ((3, 50, 60), (50, 60))}


@pytest.mark.parametrize("mode", ["normal", "multiply", "screen", "overlay", "soft_light",
                                  "luminosity"])
@pytest.mark.parametrize("shapes", SHAPES)
def test_blend_is_rvts_formulas_with_the_opacity_applied(mode, shapes):
    """The reference is RVT's `blend_images` then `apply_opacity` (the blend, then the
    opacity), each given its own copy of the layers, band by band: RVT's overlay and soft light
    write into the background array they are given, so in RVT's blender their result is also
    the background the opacity mixes with (the opacity has no effect), and an RGB layer
    blended onto a single band sees that band already blended with the previous bands. RVT's
    `render_images` also rescales a layer by its own extremes (and its NaN to its minimum)
    when a value lies outside [0, 1], as luminosity's rounding can leave -3e-8: that
    whole-image step is left out (docs/relief.md)."""
    active, background = layers(3, *SHAPES[shapes])
    got = tiled(ops.blend(image_of(active), image_of(background), mode=mode, opacity=40))
    if active.ndim == 3 and background.ndim == 2 and mode != "luminosity":
        top = np.array([rvt_blend.blend_images(mode, band.copy(), background.copy())
                        for band in active])
    else:
        top = rvt_blend.blend_images(mode, active.copy(), background.copy())
    assert_rvt_close(got, rvt_blend.apply_opacity(top, background.copy(), 40), unit=True)


def test_rvts_overlay_ignores_its_opacity():
    """What the documented difference looks like in RVT's own blender steps."""
    active, background = layers(4, (20, 30), (20, 30))
    top = rvt_blend.blend_images("overlay", active, background)
    assert top is background  # written in place: the opacity mixes the result with itself
    np.testing.assert_allclose(rvt_blend.render_images(top, background, 40), top, rtol=1e-6)
    got = tiled(ops.blend(image_of(active), image_of(layers(4, (20, 30), (20, 30))[1]),
                          mode="overlay", opacity=40))
    assert np.nanmax(abs(got - top)) > 0.05


@pytest.mark.parametrize("alpha", [False, True])
def test_byte_scale_is_rvts(alpha):
    single, rgb = layers(5, (50, 60), (3, 50, 60))
    for a in (single, rgb):
        got = tiled(ops.byte_scale(image_of(a), alpha=alpha))
        expected = rvt.vis.byte_scale(a.copy(), c_min=0, c_max=1)
        if alpha:
            bands = expected if a.ndim == 3 else np.array([expected] * 3)
            holes = np.isnan(a) if a.ndim == 2 else np.isnan(a).any(axis=0)
            expected = np.concatenate([bands, np.where(holes, 0, 255)[None]])
        np.testing.assert_array_equal(got, expected.astype(np.uint8), strict=True)


RENDER_OPS = [
    lambda a, b: ops.normalize(a, minimum=10, maximum=5, mode="percent"),
    lambda a, b: ops.blend(ops.colormap(a, cmap="viridis"), b, mode="luminosity", opacity=70),
    lambda a, b: ops.blend(a, b, mode="soft_light", opacity=30),
    lambda a, b: ops.byte_scale(ops.blend(a, b, mode="overlay"), alpha=True),
]


@pytest.mark.parametrize("build", RENDER_OPS)
@settings(max_examples=5)
@given(case=dem_and_tile(), executor=st.sampled_from(["serial", "threads"]))
def test_rendering_tiled_equals_whole(build, case, executor):
    a, (ty, tx) = case
    b = np.clip((a - np.nanmin(a)) / 40, 0, 1)
    image = build(image_of((a - np.nanmin(a)) / (np.nanmax(a) - np.nanmin(a) + 1)),
                  image_of(b.astype(np.float32)))
    tile = {"y": ty, "x": tx} if image.ndim == 2 else {"c": image.shape[0], "y": ty, "x": tx}
    np.testing.assert_array_equal(image.compute(tile=tile, executor=executor, workers=2),
                                  whole(image), strict=True)


def test_an_rgba_geotiff_is_written(tmp_path):
    (a,) = layers(6, (64, 80))
    image = tw.open(a, meta={"transform": Affine(1, 0, 0, 0, -1, 0), "crs": "EPSG:3794"})
    tw.save(ops.byte_scale(ops.colormap(image, cmap="magma"), alpha=True), tmp_path / "o.tif",
            tile=32)
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert ds.count == 4 and ds.dtypes[0] == "uint8"
        assert [c.name for c in ds.colorinterp] == ["red", "green", "blue", "alpha"]


# ---- bad parameters --------------------------------------------------------------------------


@pytest.mark.parametrize("call,message", [
    (lambda d: ops.slope(d, units="degrees"), "units of op 'slope' must be one of"),
    (lambda d: ops.slope(d, ve_factor=20_000), "ve_factor of op 'slope' must be between"),
    (lambda d: ops.hillshade(d, elevation=95), "elevation of op 'hillshade' must be between"),
    (lambda d: ops.hillshade(d, azimuth=-1), "azimuth of op 'hillshade' must be between"),
    (lambda d: ops.multi_hillshade(d, directions=0), "directions of op 'multi_hillshade'"),
    (lambda d: ops.slrm(d, radius=0), "radius of op 'slrm' must be an integer of at least 1"),
    (lambda d: ops.msrm(d, feature_min=5, feature_max=3), "op 'msrm' needs 0 <= feature_min"),
    (lambda d: ops.msrm(d, feature_max=0.5), "feature_max larger than the pixel size"),
    (lambda d: ops.mstp(d, local_scale=(5, 3, 1)), "local_scale of op 'mstp' must be"),
    (lambda d: ops.mstp(d, broad_scale=(1, 9)), "broad_scale of op 'mstp' must be"),
    (lambda d: ops.mstp(d, lightness=0), "lightness of op 'mstp' must be a positive"),
    (lambda d: ops.normalize(d, minimum=1, maximum=1), "op 'normalize' needs minimum < max"),
    (lambda d: ops.normalize(d, minimum=60, maximum=40, mode="percent"), "minimum \\+ maximum"),
    (lambda d: ops.colormap(d, cmap="no_such_map"), "cmap of op 'colormap' must be a matplotlib"),
    (lambda d: ops.colormap(d, cmap="gray", min_cut=0.9, max_cut=0.1), "min_cut < max_cut"),
    (lambda d: ops.blend(d, d, mode="darken"), "mode of op 'blend' must be one of"),
    (lambda d: ops.blend(d, d, opacity=150), "opacity of op 'blend' must be a percentage"),
    (lambda d: ops.blend(d, tw.open(np.zeros((2, 9, 9), "float32"), axes="cyx")),
     "background of op 'blend' must be a single band"),
    (lambda d: ops.byte_scale(d, minimum=1, maximum=0), "op 'byte_scale' needs minimum <"),
])
def test_bad_parameters_are_named(call, message):
    with pytest.raises(tw.ParameterError, match=message):
        call(tw.open(np.zeros((9, 9), "float32")))


def test_pipeline_files_take_lists_of_scales(tmp_path):
    np.save(tmp_path / "dem.npy", np.random.default_rng(7).normal(300, 3, (30, 40)))
    (tmp_path / "p.yaml").write_text(
        "inputs: {dem: dem.npy}\n"
        "steps:\n"
        "  rgb: {op: mstp, input: dem, params: {local_scale: [1, 3, 1], meso_scale: [4, 6, 2],"
        " broad_scale: [8, 12, 4]}}\n"
        "outputs: {rgb: rgb.npy}\n")
    from tilewise import spec

    loaded = spec.load(tmp_path / "p.yaml")
    direct = ops.mstp(tw.open(tmp_path / "dem.npy"), local_scale=(1, 3, 1),
                      meso_scale=(4, 6, 2), broad_scale=(8, 12, 4))
    np.testing.assert_array_equal(whole(loaded.images[0]), whole(direct))
    (tmp_path / "p.yaml").write_text((tmp_path / "p.yaml").read_text().replace("[1, 3, 1]",
                                                                               "[1, 3]"))
    with pytest.raises(tw.PipelineFileError, match="local_scale: must be a list of 3 values"):
        spec.load(tmp_path / "p.yaml")


# ---- the VAT pipeline files ------------------------------------------------------------------


def rvt_vat(a, elevation, radius, noise, slope_max, openness_min, svf_min):
    """RVT's VAT blender on array `a`, layer by layer as `BlenderCombination.render_all_images`
    does, from `rvt.vis` and `rvt.blend_func`, every call given its own copies (RVT's overlay
    writes into its background: see test_blend_...) and without `scale_0_to_1` (no layer
    leaves [0, 1] here)."""
    views = rvt.vis.sky_view_factor(a.copy(), 1, compute_svf=True, compute_opns=True,
                                    svf_n_dir=16, svf_r_max=radius, svf_noise=noise)
    slope = rvt.vis.slope_aspect(a.copy(), 1, 1, output_units="degree")["slope"]
    shade = rvt.vis.hillshade(a.copy(), 1, 1, sun_azimuth=315, sun_elevation=elevation)
    layers = [("sky-view factor", views["svf"], svf_min, 1, "multiply", 25),
              ("openness - positive", views["opns"], openness_min, 93, "overlay", 50),
              ("slope gradient", slope, 0, slope_max, "luminosity", 50),
              ("hillshade", shade, 0, 1, "normal", 100)]
    rendered = None
    for name, image, low, high, mode, opacity in reversed(layers):
        layer = rvt_blend.normalize_image(name, image.copy(), low, high, "value")
        if rendered is None:
            rendered = layer
            continue
        top = rvt_blend.blend_images(mode, layer.copy(), rendered.copy())
        rendered = rvt_blend.apply_opacity(top, rendered.copy(), opacity)
    return rendered


def vat_of(example, tmp_path, a):
    """The example pipeline file run on array `a` (written as a GeoTIFF in its place)."""
    from tilewise import spec

    with rasterio.open(tmp_path / "dem.tif", "w", driver="GTiff", width=a.shape[1],
                       height=a.shape[0], count=1, dtype="float32", crs="EPSG:3794",
                       transform=Affine(1, 0, 0, 0, -1, 0), nodata=np.nan) as ds:
        ds.write(a, 1)
    text = (EXAMPLES / example).read_text()
    text = text.replace("../../shared/data/dem/lidar_TM1_564_146.tif", str(tmp_path / "dem.tif"))
    (tmp_path / example).write_text(text)
    loaded = spec.load(tmp_path / example)
    return {o.name: image for o, image in zip(loaded.outputs, loaded.images, strict=True)}


GENERAL = {"elevation": 35, "radius": 10, "noise": 0, "slope_max": 50, "openness_min": 68,
           "svf_min": 0.7}
FLAT = {"elevation": 15, "radius": 20, "noise": 3, "slope_max": 15, "openness_min": 85,
        "svf_min": 0.9}


@pytest.mark.parametrize("example,settings", [("vat_general.yaml", GENERAL),
                                              ("vat_flat.yaml", FLAT)])
def test_vat_pipeline_files_are_rvts_blender(dem, tmp_path, example, settings):
    _, a = dem
    images = vat_of(example, tmp_path, a)
    assert_rvt_close(tiled(images["vat"]), rvt_vat(a, **settings), unit=True)
    eight = tiled(images["vat_8bit"])
    assert eight.shape == (4, *a.shape) and eight.dtype == np.uint8


def test_vat_combined_is_general_at_half_opacity_over_flat(dem, tmp_path):
    _, a = dem
    combined = tiled(vat_of("vat_combined.yaml", tmp_path, a)["combined"])
    expected = rvt_blend.apply_opacity(rvt_vat(a, **GENERAL), rvt_vat(a, **FLAT), 50)
    assert_rvt_close(combined, expected, unit=True)


def test_geographic_dems_take_each_rows_metres_exactly_under_tiling():
    """Per-row pixel sizes on SRTM's degrees: every tile computes its rows' metres alike."""
    dem = tw.open(data_path("dem", "srtm90.tif"))[1000:1150, 2000:2180]
    for image in (ops.slope(dem), ops.multi_hillshade_rgb(dem)):
        tile = {"y": 37, "x": 41} if image.ndim == 2 else {"c": 3, "y": 37, "x": 41}
        np.testing.assert_array_equal(image.compute(tile=tile, executor="threads", workers=2),
                                      whole(image), strict=True)


def test_the_demo_pipeline_file_renders_vat_of_srtm(monkeypatch):
    """examples/srtm_relief.yaml (scripts/demo): SRTM warped to UTM, VAT general, 8-bit RGBA;
    a window of it computed (only what that window needs is read and warped)."""
    from conftest import DATA

    from tilewise import spec

    data_path("dem", "srtm90.tif")
    monkeypatch.setenv("TILEWISE_DATA", DATA)
    loaded = spec.load(EXAMPLES / "srtm_relief.yaml")
    vat = dict(zip([o.name for o in loaded.outputs], loaded.images, strict=True))["rendering"]
    assert vat.dtype == np.uint8 and vat.shape[0] == 4
    window = vat[:, 1200:1300, 1700:1800].compute()
    assert (window[3] == 255).all() and len(np.unique(window[0])) > 50


@pytest.mark.parametrize("crs", ["EPSG:32633", rasterio.crs.CRS.from_epsg(32633)])
def test_the_crs_may_be_given_in_any_form(crs):
    """A CRS as text (a pipeline file, xarray) is as good as rasterio's object."""
    dem = np.random.default_rng(3).normal(size=(30, 40)).cumsum(axis=0)
    img = tw.open(dem, axes="yx")
    img = tw.map(np.asarray, img, meta={"crs": crs, "transform": Affine(2, 0, 0, 0, -2, 0)})
    expected = tw.map(np.asarray, tw.open(dem, axes="yx"),
                      meta={"crs": rasterio.crs.CRS.from_epsg(32633),
                            "transform": Affine(2, 0, 0, 0, -2, 0)})
    for op in (ops.slope, ops.sky_view_factor):
        assert np.array_equal(op(img).compute(), op(expected).compute(), equal_nan=True)

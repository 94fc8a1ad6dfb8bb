"""The horizon-based RVT visualisations against `rvt.vis` (rvt-py), and tiled == whole.

RVT runs on the whole array; tilewise on small tiles. Angles (openness) agree within 1e-5
degrees, everything else within 1e-5 relative, NaN for NaN. Where RVT's sky illumination is
wrong or cannot be tiled (docs/horizon.md), the reference is RVT with that one step corrected.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import rasterio
import rvt.vis
from affine import Affine
from conftest import data_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS
from scipy import ndimage

import tilewise as tw
from tilewise import library as ops
from tilewise.errors import ParameterError
from tilewise.spec import load

LIDAR = "lidar_TM1_564_146.tif"
HOLES = "lidar_TM1_564_146_nodata.tif"
ROWS, COLS = slice(0, 200), slice(0, 240)


def crop(name, rows=ROWS, cols=COLS):
    """A crop as tilewise reads it (lazily, georeferenced) and as RVT gets it."""
    path = data_path("dem", name)
    with rasterio.open(path) as ds:
        array = ds.read(1)[rows, cols]
    return tw.open(path)[rows, cols], array


def tiled(image, tile=64):
    """`image` on small tiles, checked bit for bit against other tile shapes and threads."""
    got = image.compute(tile=tile, executor="serial")
    other = image.compute(tile=(47, 90), executor="threads", workers=2)
    np.testing.assert_array_equal(got, other, strict=True)
    assert got.dtype == np.float32
    return got


def assert_close(got, expected, degrees=False):
    expected = np.asarray(expected, np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    ok = ~np.isnan(expected)
    if degrees:
        np.testing.assert_allclose(got[ok], expected[ok], rtol=0, atol=1e-5)
    else:
        np.testing.assert_allclose(got[ok], expected[ok], rtol=1e-5, atol=0)


# ---- sky-view factor, anisotropic sky-view factor, openness, local dominance --------------

HORIZON_CASES = {
    "svf": (lambda img: ops.sky_view_factor(img),
            lambda a: rvt.vis.sky_view_factor(a, 1.0)["svf"], False),
    "svf noise": (
        lambda img: ops.sky_view_factor(img, directions=8, radius=15, noise=2, ve_factor=2),
        lambda a: rvt.vis.sky_view_factor(a, 1.0, svf_n_dir=8, svf_r_max=15, svf_noise=2,
                                          ve_factor=2)["svf"], False),
    "asvf": (
        lambda img: ops.anisotropic_sky_view_factor(img, azimuth=100, level=2, noise=1),
        lambda a: rvt.vis.sky_view_factor(a, 1.0, compute_svf=False, compute_asvf=True,
                                          asvf_dir=100, asvf_level=2, svf_noise=1)["asvf"],
        False),
    "openness": (lambda img: ops.openness(img, radius=12),
                 lambda a: rvt.vis.sky_view_factor(a, 1.0, compute_svf=False,
                                                   compute_opns=True, svf_r_max=12)["opns"],
                 True),
    # RVT's negative openness (rvt.default) is the openness of the negated DEM.
    "negative openness": (
        lambda img: ops.openness(img, negative=True, noise=3, directions=12),
        lambda a: rvt.vis.sky_view_factor(-a, 1.0, compute_svf=False, compute_opns=True,
                                          svf_noise=3, svf_n_dir=12)["opns"], True),
    "local dominance": (lambda img: ops.local_dominance(img),
                        lambda a: rvt.vis.local_dominance(a), False),
    "local dominance rings": (
        lambda img: ops.local_dominance(img, min_radius=5, max_radius=12, step=2,
                                        angular_resolution=20, observer_height=2.5,
                                        ve_factor=1.5),
        lambda a: rvt.vis.local_dominance(a, min_rad=5, max_rad=12, rad_inc=2, angular_res=20,
                                          observer_height=2.5, ve_factor=1.5), False),
}


@pytest.mark.parametrize("name", [LIDAR, HOLES])
@pytest.mark.parametrize("case", list(HORIZON_CASES))
def test_horizon_ops_equal_rvt_on_the_whole_array(name, case):
    img, array = crop(name)
    ours, theirs, degrees = HORIZON_CASES[case]
    assert np.isnan(array).any() == (name == HOLES)
    assert_close(tiled(ours(img)), theirs(array.copy()), degrees)


def test_numeric_nodata_and_half_metre_pixels_as_rvt():
    """A DSM with nodata -32768 and 0.5 m pixels: heights are divided by the pixel size read
    from the transform; nodata pixels are NaN, as RVT's `no_data=`. The input is untouched."""
    img, array = crop("dsm_montpellier.tif", slice(300, 512), slice(272, 512))
    assert img.meta["nodata"] == -32768 and (array == -32768).sum() > 3
    kept = array.copy()
    assert_close(tiled(ops.sky_view_factor(img)),
                 rvt.vis.sky_view_factor(array.copy(), 0.5, no_data=-32768)["svf"])
    assert_close(tiled(ops.openness(img, negative=True)),
                 rvt.vis.sky_view_factor(np.where(array == -32768, np.nan, -array), 0.5,
                                         compute_svf=False, compute_opns=True)["opns"], True)
    assert_close(tiled(ops.local_dominance(img)),
                 rvt.vis.local_dominance(array.copy(), no_data=-32768))
    np.testing.assert_array_equal(array, kept)


# ---- sky illumination ---------------------------------------------------------------------


def coarse_without_wraparound(dem_fine, pyramid_scale, conv_from, conv_to, max_radius):
    """RVT's `horizon_generate_coarse_dem` for its pyramid (scale 2, window rows 2I-1 and 2I)
    without the wrap-around of its `np.roll`: coarse pixel I is the largest of 0 and fine rows
    2I - 1 and 2I that exist (columns alike), halved; padded as RVT pads it."""
    assert (pyramid_scale, conv_from, conv_to) == (2, 0, 1)
    fine = dem_fine[max_radius:-max_radius, max_radius:-max_radius]
    n0, n1 = fine.shape[0] // 2 + 1, fine.shape[1] // 2 + 1
    edged = np.pad(fine, ((1, 2), (1, 2)), mode="edge")  # fine rows -1 .. n + 1, clamped
    coarse = np.zeros((n0, n1))
    for dy in (0, 1):
        for dx in (0, 1):
            coarse = np.maximum(coarse, edged[dy:dy + 2 * n0:2, dx:dx + 2 * n1:2])
    coarse = coarse / pyramid_scale
    return np.pad(coarse, max_radius, constant_values=coarse.min())


def rvt_sky(array, resolution=1.0, corrected=True, **kwargs):
    """RVT's sky illumination, with its coarse levels corrected (or not)."""
    if not corrected:
        return rvt.vis.sky_illumination(array.copy(), resolution, **kwargs)
    original = rvt.vis.horizon_generate_coarse_dem
    rvt.vis.horizon_generate_coarse_dem = coarse_without_wraparound
    try:
        return rvt.vis.sky_illumination(array.copy(), resolution, **kwargs)
    finally:
        rvt.vis.horizon_generate_coarse_dem = original


@pytest.mark.parametrize("model", ["overcast", "uniform"])
def test_sky_illumination_equals_rvt(model):
    """On this crop RVT's wrap-around changes nothing: plain RVT is the reference."""
    img, array = crop(LIDAR)
    expected = rvt_sky(array, sky_model=model, corrected=False)
    np.testing.assert_array_equal(expected, rvt_sky(array, sky_model=model))
    assert_close(tiled(ops.sky_illumination(img, sky_model=model)), expected)


@pytest.mark.parametrize("model", ["overcast", "uniform"])
def test_sky_illumination_with_shadow_equals_rvt(model):
    img, array = crop(LIDAR, slice(300, 480), slice(500, 700))
    got = ops.sky_illumination(img, sky_model=model, shadow=True, shadow_azimuth=200,
                               shadow_elevation=20, directions=16, shadow_distance=60)
    assert_close(tiled(got), rvt_sky(array, sky_model=model, compute_shadow=True,
                                     shadow_az=200, shadow_el=20, num_directions=16,
                                     max_fine_radius=60))


def test_sky_illumination_coarse_levels_do_not_wrap_around():
    """Turned upside down, the crop is higher at its bottom edge than at its top: RVT's coarse
    pixels on the top row take the bottom row's heights (np.roll wraps around), a wall that
    shades thousands of pixels. tilewise's levels end at the image edge, as the corrected
    reference's do."""
    _, array = crop(LIDAR)
    array = array[::-1, ::-1].copy()
    assert array[-1].mean() > array[0].mean() + 5
    expected = rvt_sky(array)
    plain = rvt_sky(array, corrected=False)
    assert (np.abs(plain - expected) > 1e-3).sum() > 10_000
    assert_close(tiled(ops.sky_illumination(tw.open(array))), expected)


def test_sky_illumination_divides_heights_by_the_pixel_size():
    """RVT's sky illumination takes heights as if pixels were 1 m; tilewise divides them by
    the pixel size, as RVT's sky-view factor does: 2 m pixels give RVT's result for the heights
    halved on 1 m pixels."""
    _, array = crop(LIDAR)
    meta = {"crs": CRS.from_epsg(3794), "transform": Affine(2.0, 0, 0, 0, -2.0, 0)}
    got = tiled(ops.sky_illumination(tw.open(array, meta=meta), directions=16), tile=80)
    assert_close(got, rvt_sky(array / np.float32(2), num_directions=16))


def test_sky_illumination_with_nan_as_rvt_without_them():
    """In RVT one NaN makes the whole result NaN. In tilewise a NaN pixel is no horizon and no
    part of a coarse pixel, and only its own output is NaN: RVT's result on the DEM with its
    holes filled far below every height, at the pixels whose slope the fill does not touch. The
    overcast model is then RVT's, up to the largest value it is divided by."""
    img, array = crop(HOLES)
    holes = np.isnan(array)
    assert np.isnan(rvt_sky(array, corrected=False)).all()
    filled = np.where(holes, np.float32(-1e6), array)
    away = ~ndimage.binary_dilation(holes, np.ones((3, 3)))
    uniform = tiled(ops.sky_illumination(img, sky_model="uniform"))
    np.testing.assert_array_equal(np.isnan(uniform), holes)
    assert_close(uniform[away], rvt_sky(filled, sky_model="uniform")[away])
    overcast = tiled(ops.sky_illumination(img))
    np.testing.assert_array_equal(np.isnan(overcast), holes)
    assert np.nanmax(overcast) == 1
    ratio = overcast[away] / rvt_sky(filled)[away]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)


# ---- tiled == whole, every op, every executor ---------------------------------------------

OPS = {
    "sky_view_factor": lambda img, r: ops.sky_view_factor(img, radius=r, directions=8),
    "anisotropic_sky_view_factor": lambda img, r: ops.anisotropic_sky_view_factor(
        img, radius=r, noise=1),
    "openness": lambda img, r: ops.openness(img, radius=r, negative=True),
    "local_dominance": lambda img, r: ops.local_dominance(img, min_radius=max(1, r - 3),
                                                          max_radius=r),
    "sky_illumination": lambda img, r: ops.sky_illumination(img, directions=8,
                                                            shadow_distance=4 * r),
    "sky_illumination uniform": lambda img, r: ops.sky_illumination(
        img, sky_model="uniform", directions=8, shadow_distance=10 * r, shadow=True),
}


def terrain(shape, seed, holes):
    rng = np.random.default_rng(seed)
    a = (rng.normal(0, 3, shape).cumsum(axis=0) + rng.normal(0, 1, shape)).astype("float32")
    a[rng.random(shape) < holes] = np.nan
    return a


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(OPS)), st.integers(1, 70), st.integers(1, 70), st.integers(1, 12),
       st.integers(1, 40), st.integers(1, 40), st.sampled_from([0.0, 0.02]))
def test_tiled_equals_whole_bit_for_bit(name, h, w, radius, ty, tx, holes):
    a = terrain((h, w), h * 100 + w, holes)
    image = OPS[name](tw.open(a), radius)
    whole = image.compute()
    got = image.compute(tile=(ty, tx), executor="threads", workers=2)
    np.testing.assert_array_equal(got, whole, strict=True)


def test_processes_give_the_whole_array_result(tmp_path):
    a = terrain((90, 110), 7, 0.01)
    images = [make(tw.open(a), 6) for make in OPS.values()]
    paths = [tmp_path / f"{i}.npy" for i in range(len(images))]
    tw.save(images, paths, executor="processes", workers=2, tile=(40, 32))
    for name, image, path in zip(OPS, images, paths, strict=True):
        np.testing.assert_array_equal(np.load(path), image.compute(), strict=True,
                                      err_msg=name)


def test_pipeline_file_runs_the_horizon_ops(tmp_path):
    a = terrain((60, 80), 3, 0.0)
    np.save(tmp_path / "dem.npy", a)
    (tmp_path / "p.yaml").write_text(textwrap.dedent("""
        inputs:
          dem: dem.npy
        steps:
          svf: {op: sky_view_factor, input: dem, params: {radius: 5, noise: 1}}
          sim: {op: sky_illumination, input: dem, params: {sky_model: uniform, shadow: true}}
        outputs:
          svf: svf.npy
          sim: sim.npy
    """))
    spec = load(tmp_path / "p.yaml")
    svf, sim = (image.compute(tile=32) for image in spec.images)
    np.testing.assert_array_equal(svf, ops.sky_view_factor(tw.open(a), radius=5,
                                                           noise=1).compute())
    np.testing.assert_array_equal(sim, ops.sky_illumination(tw.open(a), sky_model="uniform",
                                                            shadow=True).compute())


# ---- compiled before the probe ------------------------------------------------------------

PLAN_TWICE = """
import numpy as np, sys
import tilewise as tw
from tilewise import library as ops
from tilewise.run import plan
a = np.random.default_rng(0).normal(0, 5, (700, 700)).cumsum(axis=0).astype("float32")
for make in (ops.sky_view_factor, ops.local_dominance, ops.sky_illumination):
    image = make(tw.open(a))                 # compiles the kernels, or loads them
    first = plan(image, sys.argv[1] + "/a.tif").plan.bytes_per_pixel
    second = plan(image, sys.argv[1] + "/b.tif").plan.bytes_per_pixel
    print(make.__name__, first, second)
"""


def test_the_memory_probe_does_not_measure_the_compiler(tmp_path):
    """With an empty numba cache, the kernels compile when an op is built, before the first
    plan's probe measures the op: its bytes per pixel are those of a warm second plan."""
    src = os.path.dirname(os.path.dirname(tw.__file__))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": src}
    done = subprocess.run([sys.executable, "-c", PLAN_TWICE, str(tmp_path)], env=env,
                          capture_output=True, text=True, check=True)
    assert os.listdir(tmp_path / "cache")  # it did compile
    for line in done.stdout.splitlines():
        _, first, second = line.split()
        assert float(first) <= 1.1 * float(second), line


# ---- bad input ----------------------------------------------------------------------------

BAD = [
    (ops.sky_view_factor, {"directions": 0}, "directions"),
    (ops.sky_view_factor, {"directions": 2.5}, "directions"),
    (ops.sky_view_factor, {"radius": 0}, "radius"),
    (ops.sky_view_factor, {"noise": 4}, "noise"),
    (ops.sky_view_factor, {"ve_factor": 20000}, "ve_factor"),
    (ops.sky_view_factor, {"ve_factor": "2"}, "ve_factor"),
    (ops.anisotropic_sky_view_factor, {"level": 3}, "level"),
    (ops.anisotropic_sky_view_factor, {"azimuth": None}, "azimuth"),
    (ops.openness, {"negative": 1}, "negative"),
    (ops.local_dominance, {"min_radius": 0}, "min_radius"),
    (ops.local_dominance, {"min_radius": 10, "max_radius": 5}, "max_radius"),
    (ops.local_dominance, {"step": 0}, "step"),
    (ops.local_dominance, {"angular_resolution": 0}, "angular_resolution"),
    (ops.local_dominance, {"angular_resolution": 400}, "angular_resolution"),
    (ops.local_dominance, {"observer_height": -1}, "observer_height"),
    (ops.sky_illumination, {"sky_model": "sunny"}, "sky_model"),
    (ops.sky_illumination, {"shadow_distance": 0}, "shadow_distance"),
    (ops.sky_illumination, {"shadow_azimuth": 400}, "shadow_azimuth"),
    (ops.sky_illumination, {"shadow_elevation": -5}, "shadow_elevation"),
    (ops.sky_illumination, {"shadow": "yes"}, "shadow"),
    (ops.sky_illumination, {"radius": 3}, "no parameter 'radius'"),
]


@pytest.mark.parametrize("op, params, match", BAD)
def test_bad_parameters(op, params, match):
    with pytest.raises(ParameterError, match=match):
        op(tw.open(np.zeros((20, 20), "float32")), **params)


@pytest.mark.parametrize("op", [ops.sky_view_factor, ops.openness, ops.sky_illumination])
def test_degrees_and_rectangular_pixels_are_refused_with_the_fix(op):
    with pytest.raises(ParameterError, match=r"in degrees.*warp\(dem, crs="):
        op(tw.open(data_path("dem", "srtm90.tif")))
    meta = {"transform": Affine(1.0, 0, 0, 0, -2.0, 0)}
    with pytest.raises(ParameterError, match=r"square pixels.*warp\(dem"):
        op(tw.open(np.zeros((20, 20), "float32"), meta=meta))
    with pytest.raises(ParameterError, match=r"axes \('y', 'x'\)"):
        op(tw.open(np.zeros((2, 20, 20), "float32"), axes="cyx"))


def test_local_dominance_needs_no_pixel_size():
    """Its radii are pixels and its result a ratio of heights: degrees are fine."""
    srtm = tw.open(data_path("dem", "srtm90.tif"))[:50, :60]
    got = ops.local_dominance(srtm).compute(tile=32)
    with rasterio.open(data_path("dem", "srtm90.tif")) as ds:
        array = ds.read(1)[:50, :60]
    assert_close(got, rvt.vis.local_dominance(array.astype("float32")))

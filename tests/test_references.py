"""Every built-in op against a reference written here, on real DEMs, computed in small tiles.

`test_library.py` checks that tiling changes nothing; these check that the result is right.
The references use NumPy alone (no SciPy, no tilewise kernel): padded sliding windows for the
filters, central differences written out for the terrain ops, the surface-normal dot product
for hillshade. GDAL's `gdaldem` would be a published reference, but its Python bindings do not
install from PyPI without a system GDAL, and rasterio does not ship the binary.

Then a few pixels computed by hand (planes of known slope and facing, a sun in a known place),
which catch conventions a reference might share with the op: which way is north, sin or cos.
"""

import math

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import data_path
from numpy.lib.stride_tricks import sliding_window_view

import tilewise as tw
from tilewise import library as ops

TILE = 128
#: float32's unit roundoff: the relative error of one rounding to float32.
U32 = 2.0**-24
#: (file, window of the file the filters run on: the whole SRTM DEM is too big for windows).
DEMS = {
    "lidar": ("lidar_TM1_564_146.tif", None),
    "lidar_nan": ("lidar_TM1_564_146_nodata.tif", None),
    "srtm": ("srtm90.tif", (slice(1000, 1600), slice(2000, 2900))),
}


def load(name, crop=True):
    """The tilewise image, the raw array and the array as float64 with nodata as NaN."""
    file, window = DEMS[name]
    path = data_path("dem", file)
    image = tw.open(path)
    with rasterio.open(path) as ds:
        raw = ds.read(1)
        nodata = ds.nodata
    if crop and window is not None:
        image, raw = image[window], raw[window]
    z = raw.astype("float64")
    if nodata is not None:
        z[raw == nodata] = np.nan  # a NaN nodata is NaN already
    return image, raw, z


def tiled(image):
    return image.compute(tile=TILE, executor="threads", workers=2)


# ---- filters ---------------------------------------------------------------------------------

#: SciPy's `mode` names and NumPy's `pad` modes that fill the same way beyond the edge.
PAD = {"nearest": "edge", "mirror": "reflect", "reflect": "symmetric", "constant": "constant"}


def windows(z, size, mode="nearest"):
    """Every pixel's size x size box, centred as SciPy centres it (size // 2 before)."""
    pad = [(size // 2, (size - 1) // 2)] * 2
    return sliding_window_view(np.pad(z, pad, mode=PAD[mode]), (size, size))


def box_mean(z, size, mode):
    return windows(z, size, mode).mean(axis=(-2, -1))


def gaussian_reference(z, sigma, truncate=4.0):
    """Separable correlation with normalised exp(-x^2 / 2 sigma^2), cut at truncate * sigma."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 * x**2 / sigma**2)
    w /= w.sum()
    out = z
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        p = np.pad(out, pad, mode="edge")
        view = sliding_window_view(p, len(w), axis=axis)
        out = view @ w
    return out


def sobel_parts(z):
    """Each axis's Sobel derivative and the sum of the absolute values of its terms."""
    p = np.pad(z, 1, mode="edge")
    dy = p[2:, :] - p[:-2, :]            # rows i+1 - (i-1), still padded in x
    dx = p[:, 2:] - p[:, :-2]
    gy = dy[:, :-2] + 2 * dy[:, 1:-1] + dy[:, 2:]
    gx = dx[:-2, :] + 2 * dx[1:-1, :] + dx[2:, :]
    ay = abs(dy[:, :-2]) + 2 * abs(dy[:, 1:-1]) + abs(dy[:, 2:])
    ax = abs(dx[:-2, :]) + 2 * abs(dx[1:-1, :]) + abs(dx[2:, :])
    return gy, gx, ay + ax


def assert_same_nans(got, expected):
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))


@pytest.mark.parametrize("dem", DEMS)
@pytest.mark.parametrize("size,mode", [(5, "nearest"), (4, "nearest"), (3, "mirror"),
                                       (6, "reflect"), (5, "constant")])
def test_mean_is_the_box_average(dem, size, mode):
    """Catches a wrong window (size, centring of even sizes), weights or edge mode.

    Tilewise filters float32 in float32, one axis at a time: the result is within two float32
    roundings of the exact mean (the values are all positive, so relative to the mean itself);
    the float64 reference is exact to ~1e-16.
    """
    image, _, z = load(dem)
    got = tiled(ops.mean(image, size=size, mode=mode))
    assert got.dtype == np.float32
    expected = box_mean(z, size, mode)
    assert_same_nans(got, expected)
    np.testing.assert_allclose(got, expected, rtol=2.5 * U32, atol=0)


@pytest.mark.parametrize("dem", DEMS)
@pytest.mark.parametrize("sigma", [0.8, 2.0])
def test_gaussian_is_the_normalised_gaussian_kernel(dem, sigma):
    """Catches a wrong sigma, truncation radius, missing normalisation or edge mode.

    Positive weights and positive data: two float32 roundings (one per axis) bound the error.
    """
    image, _, z = load(dem)
    got = tiled(ops.gaussian(image, sigma=sigma))
    expected = gaussian_reference(z, sigma)
    assert_same_nans(got, expected)
    np.testing.assert_allclose(got, expected, rtol=2.5 * U32, atol=0)


@pytest.mark.parametrize("dem", DEMS)
@pytest.mark.parametrize("which,size", [("median", 3), ("median", 5), ("minimum", 4),
                                        ("maximum", 5), ("maximum", 2)])
def test_rank_filters_bit_for_bit(dem, which, size):
    """Order statistics of the box, a NaN anywhere in the box gives NaN: no arithmetic, so
    the result is exactly one of the input values, in the input's dtype."""
    image, raw, z = load(dem)
    got = tiled(getattr(ops, which)(image, size=size))
    assert got.dtype == raw.dtype
    reduce = {"median": np.median, "minimum": np.min, "maximum": np.max}[which]
    # Odd sizes only for the median: the middle value exists and np.median returns it.
    expected = reduce(windows(z, size), axis=(-2, -1)).astype(raw.dtype)
    np.testing.assert_array_equal(got, expected, strict=True)


@pytest.mark.parametrize("dem", DEMS)
def test_gradient_magnitude_is_the_sobel_length(dem):
    """Catches a wrong kernel ([1, 2, 1] smoothing across, [-1, 0, 1] along) or a missing root.

    Tilewise rounds to float32 after each 1-d pass and in the square root; the error of each
    rounding is at most U32 times the absolute sum of the terms it adds, so 8 U32 times the
    sum of the absolute Sobel terms bounds it, even where the terms cancel.
    """
    image, _, z = load(dem)
    got = tiled(ops.gradient_magnitude(image))
    gy, gx, terms = sobel_parts(z)
    expected = np.sqrt(gy * gy + gx * gx)
    # The centre pixel has weight 0 in both kernels; as documented, a NaN anywhere in the
    # 3 x 3 box still makes the result NaN.
    expected[np.isnan(windows(z, 3)).any(axis=(-2, -1))] = np.nan
    assert_same_nans(got, expected)
    ok = np.isfinite(expected)
    assert np.all(abs(got[ok] - expected[ok]) <= 8 * U32 * terms[ok])
    assert expected[ok].max() > 1  # real relief, not a flat test


# ---- terrain ---------------------------------------------------------------------------------

def metres(path):
    """Per row, the pixel width and height in metres, positive. For degrees, the closed forms
    on the CRS's ellipsoid (WGS 84 here): a parallel's radius N cos(lat), N = a / sqrt(1 -
    e^2 sin^2 lat), and the meridian's radius of curvature M = a (1 - e^2) / (1 - e^2 sin^2
    lat)^1.5, at each row's central latitude (the op measures geodesics with pyproj)."""
    with rasterio.open(path) as ds:
        width, height = ds.res
        rows = np.arange(ds.height)
        if not ds.crs.is_geographic:
            return np.full(ds.height, width)[:, None], np.full(ds.height, height)[:, None]
        lat = np.radians(ds.transform.f + (rows + 0.5) * ds.transform.e)
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    w = 1 - e2 * np.sin(lat) ** 2
    across = a / np.sqrt(w) * np.cos(lat) * np.radians(width)
    along = a * (1 - e2) / w**1.5 * np.radians(height)
    return across[:, None], along[:, None]


def rises(z, dx, dy):
    """Rise per metre towards east and towards north (row 0 is the north edge) by RVT's
    central differences: a neighbour beyond the edge or NaN counts as the centre pixel; NaN
    where the centre is."""
    padded = np.pad(z, 1, mode="edge")
    def neighbour(rows, cols):
        n = padded[rows, cols]
        return np.where(np.isnan(n), z, n)
    west, east = neighbour(slice(1, -1), slice(None, -2)), neighbour(slice(1, -1), slice(2, None))
    north, south = neighbour(slice(None, -2), slice(1, -1)), neighbour(slice(2, None), slice(1, -1))
    hole = np.where(np.isnan(z), np.nan, 0)
    return (east - west) / (2 * dx) + hole, (north - south) / (2 * dy) + hole


def slope_reference(z, dx, dy, units="degree"):
    east, north = rises(z, dx, dy)
    tangent = np.hypot(east, north)
    return {"percent": 100 * tangent, "degree": np.degrees(np.arctan(tangent)),
            "radian": np.arctan(tangent)}[units]


def aspect_reference(z, dx, dy):
    """Compass azimuth (clockwise from north) of the downhill direction in (-180, 180]; RVT's
    1e-8 for a zero north-south difference makes flat ground 0 and due east/west +-90."""
    east, north = rises(z, dx, dy)
    return np.degrees(np.arctan2(-east, np.where(north == 0, 1e-8, -north)))


def light_reference(z, dx, dy, azimuth, elevation):
    """Cosine of the angle between the surface normal and the sun, as a dot product."""
    east, north = rises(z, dx, dy)
    az, alt = np.radians(azimuth), np.radians(elevation)
    sun = (np.sin(az) * np.cos(alt), np.cos(az) * np.cos(alt), np.sin(alt))  # east, north, up
    return (-east * sun[0] - north * sun[1] + sun[2]) / np.sqrt(1 + east**2 + north**2)


def terrain_case(dem):
    image, _, z = load(dem, crop=False)
    return image, z, metres(data_path("dem", DEMS[dem][0]))


def assert_float32_close(got, expected, ulps=6):
    """Within a few float32 units of the float64 reference: the op rounds the slope's tangent
    to float32 and takes its angle as RVT does, with NumPy's float32 arctangent (a unit or two)
    and degrees (half a unit more)."""
    assert got.dtype == np.float32
    assert_same_nans(got, expected)
    ok = np.isfinite(expected)
    np.testing.assert_array_less(abs(got[ok] - expected[ok]),
                                 ulps * np.spacing(abs(expected[ok]).astype("float32")) + 1e-30)


@pytest.mark.parametrize("dem", DEMS)
@pytest.mark.parametrize("units,ve_factor", [("degree", 1.0), ("percent", 1.0), ("radian", 1.0),
                                            ("degree", 2.5)])
def test_slope_against_central_differences_in_metres(dem, units, ve_factor):
    """Catches a wrong unit factor (percent is 100 x rise), ve_factor, pixel size (SRTM's
    degrees in metres, row by row), difference scheme or edge handling."""
    image, z, (dx, dy) = terrain_case(dem)
    got = tiled(ops.slope(image, units=units, ve_factor=ve_factor))
    z = (z.astype("float32") * np.float32(ve_factor)).astype("float64")  # as RVT exaggerates
    assert_float32_close(got, slope_reference(z, dx, dy, units))
    assert np.isnan(got).any() == (dem == "lidar_nan")


@pytest.mark.parametrize("dem", DEMS)
def test_aspect_against_the_downhill_azimuth(dem):
    """Catches north and south (or east and west) swapped, or a counter-clockwise angle; an
    angle at +-180 may come out as either."""
    image, z, (dx, dy) = terrain_case(dem)
    got = tiled(ops.aspect(image)).astype("float64")
    expected = aspect_reference(z, dx, dy)
    assert_same_nans(got, expected)
    ok = np.isfinite(expected)
    turn = (got[ok] - expected[ok] + 180) % 360 - 180
    np.testing.assert_array_less(abs(turn), 4 * np.spacing(np.float32(180)))


@pytest.mark.parametrize("dem", DEMS)
@pytest.mark.parametrize("azimuth,elevation", [(315.0, 35.0), (135.0, 30.0), (20.0, 60.0)])
def test_hillshade_against_the_normal_dot_sun(dem, azimuth, elevation):
    """Catches sin and cos swapped, a sun turned the wrong way, or a wrong clip: the reference
    takes the dot product of unit vectors, the op the spherical-trigonometry form."""
    image, z, (dx, dy) = terrain_case(dem)
    got = tiled(ops.hillshade(image, azimuth=azimuth, elevation=elevation))
    expected = np.clip(light_reference(z, dx, dy, azimuth, elevation), 0, None)
    assert got.dtype == np.float32
    assert_same_nans(got, expected)
    ok = np.isfinite(expected)
    np.testing.assert_allclose(got[ok], expected[ok], rtol=0, atol=1e-6)
    assert np.isnan(got).any() == (dem == "lidar_nan")
    assert got[ok].max() - got[ok].min() > 0.5  # real relief, not a flat test


@pytest.mark.parametrize("dem", DEMS)
@pytest.mark.parametrize("percentiles", [(2.0, 98.0), (0.5, 99.5)])
def test_stretch_against_numpy_percentiles(dem, percentiles):
    """The same arithmetic as the reference, so bit for bit: catches inexact percentiles,
    a wrong scale (1-255) or nodata not mapped to 0."""
    image, _, z = load(dem, crop=False)
    got = tiled(ops.stretch(image, percentiles=list(percentiles)))
    low, high = np.nanpercentile(z, percentiles)
    expected = 1 + np.rint(254 * np.clip((z - low) / (high - low), 0, 1))
    expected = np.where(np.isnan(z), 0, expected).astype("uint8")
    np.testing.assert_array_equal(got, expected, strict=True)
    assert got.min() == (0 if dem == "lidar_nan" else 1) and got.max() == 255


# ---- pixels computed by hand -----------------------------------------------------------------

def plane(tmp_path, east, south, pixel=10.0, crs="EPSG:3857", origin=(500_000.0, 0.0)):
    """A GeoTIFF of a plane: elevation changes by `east` per pixel eastwards and `south` per
    pixel southwards (down the rows), on square pixels of `pixel` CRS units."""
    rows, cols = np.mgrid[0:40, 0:50].astype("float64")
    z = east * cols + south * rows + 1000  # float64, so that the plane is exact enough
    path = tmp_path / "plane.tif"
    transform = Affine(pixel, 0, origin[0], 0, -pixel, origin[1])
    with rasterio.open(path, "w", driver="GTiff", width=50, height=40, count=1,
                       dtype="float64", crs=crs, transform=transform) as ds:
        ds.write(z, 1)
    return tw.open(path)


#: Downhill facing -> (change per pixel eastwards, southwards) of a 45 degree plane on 10 m
#: pixels, and the aspect it must have (RVT's: west is -90).
FACING = {"north": (0, 10, 0), "east": (-10, 0, 90), "south": (0, -10, 180),
          "west": (10, 0, -90), "north-east": (-10, 10, 45), "south-west": (10, -10, -135)}


@pytest.mark.parametrize("facing", FACING)
def test_planes_of_known_slope_and_facing(tmp_path, facing):
    """A plane dropping 10 m per 10 m pixel is 45 degrees, 100 percent (the north-east one
    drops sqrt(2) x 10 m per pixel along its fall line); aspect is where it faces, clockwise
    from north."""
    east, south, azimuth = FACING[facing]
    dem = plane(tmp_path, east, south)
    inner = (slice(1, -1), slice(1, -1))  # the edge pixels: see the next test
    degrees = math.degrees(math.atan(math.hypot(east, south) / 10))
    np.testing.assert_allclose(tiled(ops.slope(dem))[inner], degrees, rtol=1e-6)
    np.testing.assert_allclose(tiled(ops.slope(dem, units="percent"))[inner],
                               100 * math.hypot(east, south) / 10, rtol=1e-6)
    np.testing.assert_allclose(tiled(ops.aspect(dem))[inner], azimuth, atol=1e-4)


def test_edges_see_the_edge_pixel_beyond_the_image(tmp_path):
    """RVT pads the DEM with its edge pixels: the central difference at the first and last
    row spans one pixel, not two, so a 45 degree plane facing north is atan(0.5) there."""
    slope = tiled(ops.slope(plane(tmp_path, 0, 10)))
    np.testing.assert_allclose(slope[[0, -1]], math.degrees(math.atan(0.5)), rtol=1e-6)
    np.testing.assert_allclose(slope[1:-1], 45, rtol=1e-6)


def test_flat_ground_has_aspect_0_and_hillshade_sin_elevation(tmp_path):
    dem = plane(tmp_path, 0, 0)
    assert (tiled(ops.slope(dem)) == 0).all() and (tiled(ops.aspect(dem)) == 0).all()
    np.testing.assert_allclose(tiled(ops.hillshade(dem, azimuth=123, elevation=30)), 0.5,
                               rtol=1e-7)
    np.testing.assert_allclose(tiled(ops.hillshade(dem, elevation=90)), 1, rtol=1e-7)


@pytest.mark.parametrize("azimuth,expected", [(90, math.sqrt(3) / 2), (0, math.sqrt(3) / 4),
                                              (270, 0.0)])
def test_hillshade_of_a_30_degree_east_facing_plane(tmp_path, azimuth, expected):
    """light = cos(zenith) cos(slope) + sin(zenith) sin(slope) cos(aspect - sun azimuth);
    with the sun 30 degrees up (zenith 60) and a 30 degree slope facing east the first term
    is 0.5 x 0.866 = 0.433 and the second 0.866 x 0.5 x cos(90 - azimuth) = 0.433 cos(...).
    Sun in the east: 0.866 (the sun 30 degrees off the normal); in the north: 0.433; in the
    west: 0, grazing light."""
    dem = plane(tmp_path, -10 * math.tan(math.radians(30)), 0)
    shade = tiled(ops.hillshade(dem, azimuth=azimuth, elevation=30))
    np.testing.assert_allclose(shade[:, 1:-1], expected, atol=1e-6)


def test_degrees_become_metres_row_by_row(tmp_path):
    """At 60 degrees north a 0.001 degree pixel is about 111.4 m tall and 55.8 m wide (the
    ellipsoid's closed forms, `metres`): a plane dropping one pixel width per pixel eastwards
    is 45 degrees in the row at 60 N and a little more north of it, where pixels are
    narrower; one dropping a pixel height per pixel southwards faces south."""
    origin = (10.0, 60.02)  # 40 rows of 0.001 degrees centred on 60 N
    lat = np.radians(60.02 - (np.arange(40) + 0.5) * 0.001)
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    across = a / np.sqrt(1 - e2 * np.sin(lat) ** 2) * np.cos(lat) * np.radians(0.001)
    drop = across[19]  # the width in row 19, whose centre is at 60.0005 N
    east = plane(tmp_path, -drop, 0, pixel=0.001, crs="EPSG:4326", origin=origin)
    expected = np.degrees(np.arctan(drop / across))[:, None] * np.ones(48)
    np.testing.assert_allclose(tiled(ops.slope(east))[:, 1:-1], expected, rtol=1e-6)
    (tmp_path / "plane.tif").unlink()
    south = plane(tmp_path, 0, -111.4, pixel=0.001, crs="EPSG:4326", origin=origin)
    np.testing.assert_allclose(tiled(ops.aspect(south)), 180, atol=1e-4)


def test_a_geographic_dem_is_refused_where_one_pixel_size_is_needed():
    dem = tw.open(data_path("dem", "srtm90.tif"))
    with pytest.raises(tw.ParameterError, match=r"geographic .* tilewise.library.warp"):
        ops.msrm(dem)

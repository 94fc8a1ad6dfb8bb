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
#: Metres per degree as the terrain ops document it (WGS 84 mean).
METRES_PER_DEGREE = 111_320.0
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
    """Pixel width and height in metres, positive; degrees converted at the central latitude."""
    with rasterio.open(path) as ds:
        width, height = ds.res
        if ds.crs.is_geographic:
            latitude = (ds.bounds.top + ds.bounds.bottom) / 2
            return (width * METRES_PER_DEGREE * math.cos(math.radians(latitude)),
                    height * METRES_PER_DEGREE)
        return width, height


def rises(z, dx, dy):
    """Rise per metre towards east and towards north (row 0 is the north edge): central
    differences inside, one-sided at the image edge."""
    east = np.empty_like(z)
    east[:, 1:-1] = (z[:, 2:] - z[:, :-2]) / (2 * dx)
    east[:, 0] = (z[:, 1] - z[:, 0]) / dx
    east[:, -1] = (z[:, -1] - z[:, -2]) / dx
    north = np.empty_like(z)
    north[1:-1] = (z[:-2] - z[2:]) / (2 * dy)
    north[0] = (z[0] - z[1]) / dy
    north[-1] = (z[-2] - z[-1]) / dy
    return east, north


def slope_reference(z, dx, dy, units="degrees"):
    east, north = rises(z, dx, dy)
    tangent = np.hypot(east, north)
    return 100 * tangent if units == "percent" else np.degrees(np.arctan(tangent))


def aspect_reference(z, dx, dy):
    """Compass azimuth (clockwise from north) of the downhill direction; -1 where flat."""
    east, north = rises(z, dx, dy)
    out = np.degrees(np.arctan2(-east, -north)) % 360
    return np.where((east == 0) & (north == 0), -1.0, out)


def light_reference(z, dx, dy, azimuth, altitude):
    """Cosine of the angle between the surface normal and the sun, as a dot product."""
    east, north = rises(z, dx, dy)
    az, alt = np.radians(azimuth), np.radians(altitude)
    sun = (np.sin(az) * np.cos(alt), np.cos(az) * np.cos(alt), np.sin(alt))  # east, north, up
    return (-east * sun[0] - north * sun[1] + sun[2]) / np.sqrt(1 + east**2 + north**2)


def terrain_case(dem):
    image, _, z = load(dem, crop=False)
    return image, z, metres(data_path("dem", DEMS[dem][0]))


def assert_float32_close(got, expected, geographic):
    """Bit for bit when the pixel size is the file's own; for degrees the central latitude is
    computed by a different expression than the op's, so the metres can differ in the last bit
    of a float64, and the float32 result by one unit in its last place."""
    assert got.dtype == np.float32
    expected = expected.astype("float32")
    if geographic:
        assert_same_nans(got, expected)
        np.testing.assert_allclose(got, expected, rtol=U32 * 2, atol=0)
    else:
        np.testing.assert_array_equal(got, expected, strict=True)


@pytest.mark.parametrize("dem", DEMS)
@pytest.mark.parametrize("units,z_factor", [("degrees", 1.0), ("percent", 1.0),
                                            ("degrees", 2.5)])
def test_slope_against_central_differences_in_metres(dem, units, z_factor):
    """Catches a wrong unit factor (percent is 100 x rise), z_factor, pixel size (SRTM's
    degrees in metres at its latitude), difference scheme or edge handling."""
    image, z, (dx, dy) = terrain_case(dem)
    got = tiled(ops.slope(image, units=units, z_factor=z_factor))
    expected = slope_reference(z * z_factor, dx, dy, units)
    assert_float32_close(got, expected, geographic=dem == "srtm")
    assert np.isnan(got).any() == (dem == "lidar_nan")


@pytest.mark.parametrize("dem", DEMS)
def test_aspect_against_the_downhill_azimuth(dem):
    """Catches north and south (or east and west) swapped, or a counter-clockwise angle."""
    image, z, (dx, dy) = terrain_case(dem)
    got = tiled(ops.aspect(image))
    expected = aspect_reference(z, dx, dy)
    if dem == "srtm":
        # One float32 ulp, as for slope; an angle just below 360 may round to 0 in either.
        close = np.isclose(got, expected, rtol=2 * U32, atol=0) | (
            np.isclose(got % 360, expected % 360, rtol=0, atol=1e-4))
        assert close[np.isfinite(expected)].all()
        assert_same_nans(got, expected)
    else:
        assert_float32_close(got, expected, geographic=False)


@pytest.mark.parametrize("dem", DEMS)
@pytest.mark.parametrize("azimuth,altitude", [(315.0, 45.0), (135.0, 30.0), (20.0, 60.0)])
def test_hillshade_against_the_normal_dot_sun(dem, azimuth, altitude):
    """Catches sin and cos swapped, a sun turned the wrong way, a wrong scale or rounding.

    The reference takes the dot product of unit vectors, the op the spherical-trigonometry
    form: equal to ~1e-15, so the 8-bit values are equal except where 254 x light lies within
    1e-9 of a half integer, where rounding may go either way (none expected on real data).
    """
    image, z, (dx, dy) = terrain_case(dem)
    got = tiled(ops.hillshade(image, azimuth=azimuth, altitude=altitude))
    assert got.dtype == np.uint8
    scaled = 254 * np.clip(light_reference(z, dx, dy, azimuth, altitude), 0, 1)
    expected = np.where(np.isnan(scaled), 0, 1 + np.rint(scaled))
    tie = abs(scaled - np.floor(scaled) - 0.5) < 1e-9
    differ = got != expected
    assert not (differ & ~tie).any(), f"{differ.sum()} pixels differ"
    assert (got == 0).any() == (dem == "lidar_nan")
    assert len(np.unique(got)) > 100  # real relief, not a constant


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
#: pixels, and the aspect it must have.
FACING = {"north": (0, 10, 0), "east": (-10, 0, 90), "south": (0, -10, 180),
          "west": (10, 0, 270), "north-east": (-10, 10, 45)}


@pytest.mark.parametrize("facing", FACING)
def test_planes_of_known_slope_and_facing(tmp_path, facing):
    """A plane dropping 10 m per 10 m pixel is 45 degrees, 100 percent (the north-east one
    drops sqrt(2) x 10 m per pixel along its fall line); aspect is where it faces, clockwise
    from north."""
    east, south, azimuth = FACING[facing]
    dem = plane(tmp_path, east, south)
    degrees = math.degrees(math.atan(math.hypot(east, south) / 10))
    np.testing.assert_allclose(tiled(ops.slope(dem)), degrees, rtol=1e-6)
    np.testing.assert_allclose(tiled(ops.slope(dem, units="percent")),
                               100 * math.hypot(east, south) / 10, rtol=1e-6)
    np.testing.assert_allclose(tiled(ops.aspect(dem)), azimuth, atol=1e-4)


def test_flat_ground_has_aspect_minus_one_and_hillshade_sin_altitude(tmp_path):
    """Lit from 30 degrees up, flat ground gets sin(30) = 0.5: 1 + rint(127) = 128."""
    dem = plane(tmp_path, 0, 0)
    assert (tiled(ops.slope(dem)) == 0).all() and (tiled(ops.aspect(dem)) == -1).all()
    assert (tiled(ops.hillshade(dem, azimuth=123, altitude=30)) == 128).all()
    assert (tiled(ops.hillshade(dem, altitude=90)) == 255).all()


@pytest.mark.parametrize("azimuth,expected", [(90, 221), (0, 111), (270, 1)])
def test_hillshade_of_a_30_degree_east_facing_plane(tmp_path, azimuth, expected):
    """light = sin(alt) cos(slope) + cos(alt) sin(slope) cos(sun azimuth - aspect), with
    altitude 30 and slope 30 both terms' factors are 0.5 x 0.866 = 0.433. Sun in the east:
    0.866, 1 + rint(219.97) = 221 (the sun is 30 degrees off the normal). Sun in the north:
    0.433, 1 + rint(109.99) = 111. Sun in the west: 0.433 - 0.433 = 0, grazing
    light, 1."""
    dem = plane(tmp_path, -10 * math.tan(math.radians(30)), 0)
    # light = sin(alt) cos(slope) + cos(alt) sin(slope) cos(azimuth - 90)
    alt, slope = math.radians(30), math.radians(30)
    light = (math.sin(alt) * math.cos(slope)
             + math.cos(alt) * math.sin(slope) * math.cos(math.radians(azimuth - 90)))
    assert 1 + round(254 * max(light, 0)) == expected  # the hand values above
    assert (tiled(ops.hillshade(dem, azimuth=azimuth, altitude=30)) == expected).all()


def test_degrees_become_metres_at_the_central_latitude(tmp_path):
    """At 60 degrees north a 0.001 degree pixel is 111.32 m tall and 55.66 m wide (cos 60 =
    0.5): a plane dropping 55.66 m per pixel eastwards is 45 degrees, and one dropping 55.66 m
    per pixel southwards is atan(0.5) = 26.565 degrees, facing south."""
    # 40 rows of 0.001 degrees centred on 60 N.
    origin = (10.0, 60.02)
    east = plane(tmp_path, -55.66, 0, pixel=0.001, crs="EPSG:4326", origin=origin)
    np.testing.assert_allclose(tiled(ops.slope(east)), 45, rtol=1e-6)
    (tmp_path / "plane.tif").unlink()
    south = plane(tmp_path, 0, -55.66, pixel=0.001, crs="EPSG:4326", origin=origin)
    np.testing.assert_allclose(tiled(ops.slope(south)), math.degrees(math.atan(0.5)),
                               rtol=1e-6)
    np.testing.assert_allclose(tiled(ops.aspect(south)), 180, atol=1e-4)


def test_aspect_stays_below_360(tmp_path):
    """Facing north and a hair west of it: the float64 aspect is 359.9999943 degrees."""
    dem = plane(tmp_path, 1e-6, 10)
    assert tiled(ops.aspect(dem)).max() < 360

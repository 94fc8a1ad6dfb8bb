"""The format registry: finding a format, plug-ins, refusals, handles, fingerprints, metadata."""

import contextlib
import os
import subprocess
import sys
import warnings
from fractions import Fraction

import numpy as np
import pytest
import rasterio
import tifffile
from affine import Affine
from conftest import data_path

import tilewise as tw
from tilewise import meta as metadata
from tilewise.io import GDAL_CACHE, configure_gdal, handles, open_source, registry, sink_class
from tilewise.io.location import resolve, scheme
from tilewise.io.memory import SharedArraySource
from tilewise.io.npy import NpySink
from tilewise.io.zarr_array import ZarrSink
from tilewise.regions import Box


def write_tiff(path, data, **options):
    bands = 1 if data.ndim == 2 else data.shape[0]
    profile = {"driver": "GTiff", "width": data.shape[-1], "height": data.shape[-2],
               "count": bands, "dtype": data.dtype.name, **options}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data.reshape(bands, *data.shape[-2:]))
    return path


# Finding a format


def test_format_by_name_beats_suffix_and_content_beats_suffix(tmp_path):
    a = np.arange(12, dtype="int16").reshape(3, 4)
    np.save(tmp_path / "a.npy", a)
    os.rename(tmp_path / "a.npy", tmp_path / "looks.tif")
    source = open_source(tmp_path / "looks.tif")
    assert source.format == "npy"
    np.testing.assert_array_equal(source.read(Box.of_shape(a.shape)), a)
    write_tiff(tmp_path / "raster.dat", a)
    assert open_source(tmp_path / "raster.dat").format == "geotiff"
    assert open_source(tmp_path / "raster.dat", format="gdal").format == "gdal"
    assert open_source(tmp_path / "raster.dat", "ab").axes == ("a", "b")


def test_unknown_format_option_and_name_are_refused(tmp_path):
    path = write_tiff(tmp_path / "a.tif", np.ones((4, 4), "uint8"))
    with pytest.raises(tw.ParameterError,
                       match=r"format 'geotiff' takes no option 'overview' .*options: none"):
        open_source(path, overview=2)
    with pytest.raises(tw.UnsupportedFormatError,
                       match=r"unknown format 'vtk'; the known formats are tiff, geotiff, zarr"):
        open_source(path, format="vtk")
    with pytest.raises(tw.ParameterError, match="in-memory array takes no format"):
        open_source(np.ones(3), format="npy")


def test_urls_are_kept_and_matched_by_scheme():
    assert resolve("s3://bucket/dem.tif") == "s3://bucket/dem.tif"
    assert resolve("/vsizip//data/a.zip/dem.tif") == "/vsizip//data/a.zip/dem.tif"
    assert resolve("dem.tif") == os.path.join(os.getcwd(), "dem.tif")
    assert (scheme("S3://b/k"), scheme("/vsis3/b/k"), scheme("/data/k")) == ("s3", "vsi", None)
    with pytest.raises(tw.UnsupportedFormatError, match="no format reads ftp locations"):
        open_source("ftp://host/dem.tif")
    with pytest.raises(tw.UnsupportedFormatError, match=r"suffix '\.npy' \(formats reading "
                                                        r"s3: geotiff, zarr, gdal\)"):
        open_source("s3://bucket/a.npy")
    with pytest.raises(tw.UnsupportedFormatError, match="format 'npy' does not read s3"):
        open_source("s3://bucket/a.tif", format="npy")


def test_sink_class_by_suffix_or_by_name():
    assert sink_class("/o/a.zarr") is ZarrSink
    assert sink_class("/o/a.bin", format="npy") is NpySink
    with pytest.raises(tw.UnsupportedFormatError, match=r"cannot write /o/a\.vrt: format 'gdal' "
                                                        r"is read only"):
        sink_class("/o/a.vrt", format="gdal")
    with pytest.raises(tw.UnsupportedFormatError, match=r"cannot write /o/a\.xyz: unknown "
                                                        r"suffix '\.xyz'"):
        sink_class("/o/a.xyz")


LEAN_RUN = """
import sys
import numpy as np
import rasterio
import tilewise as tw
from tilewise import library

path, out = sys.argv[1], sys.argv[2]
with rasterio.open(path, "w", driver="GTiff", width=64, height=48, count=1, dtype="float32",
                   crs="EPSG:32633", transform=rasterio.Affine(1, 0, 0, 0, -1, 0)) as ds:
    ds.write(np.arange(64 * 48, dtype="float32").reshape(1, 48, 64))
tw.save(library.slope(tw.open(path)), out, executor="threads", workers=2, progress=False)
print(" ".join(m for m in ("zarr", "astropy", "matplotlib", "pylibCZIrw") if m in sys.modules))
"""


def test_a_geotiff_run_imports_no_other_formats_library(tmp_path):
    """Each format's module is imported by its first file: a process that reads and writes
    GeoTIFFs (every worker of a run) never pays for Zarr, astropy or matplotlib."""
    done = subprocess.run([sys.executable, "-c", LEAN_RUN, str(tmp_path / "dem.tif"),
                           str(tmp_path / "slope.tif")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []
    assert tw.open(tmp_path / "slope.tif").shape == (48, 64)


def test_a_directory_is_an_input_error(tmp_path):
    (tmp_path / "folder.tif").mkdir()
    (tmp_path / "plain").mkdir()
    with pytest.raises(tw.InputError, match=r"plain is a directory that no format reads"):
        tw.open(tmp_path / "plain")
    with pytest.raises(tw.InputError, match=r"folder\.tif is a directory that no format reads"):
        tw.open(tmp_path / "folder.tif")
    with pytest.raises(tw.InputError, match=r"plain is a directory; format 'geotiff' reads "
                                            r"files"):
        open_source(tmp_path / "plain", format="geotiff")


# Plug-ins through entry points

PLUGIN = '''
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tilewise.io import Format, Source


def _load(path, delimiter):
    return np.loadtxt(path, delimiter=delimiter, ndmin=2)


@dataclass(frozen=True, eq=False)
class TextSource(Source):
    format: ClassVar[str] = "text"
    delimiter: str = None

    def read(self, box):
        return _load(self.path, self.delimiter)[box.slices]


def open_text(location, axes, delimiter=None):
    data = _load(location, delimiter)
    return TextSource(data.shape, data.dtype, ("y", "x"), data.shape, {}, location, delimiter)


FORMAT = Format("text", open_text, (".myfmt",), options=("delimiter",))
'''


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder on sys.path into which a test installs plug-ins, as pip would."""
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.plugins.cache_clear()
    yield tmp_path
    registry.plugins.cache_clear()


def install(folder, name, module, entry_points):
    (folder / f"{name}.py").write_text(module)
    info = folder / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[tilewise.formats]\n" + entry_points)


def test_a_format_plugin_is_found_through_its_entry_point(plugin_dir):
    install(plugin_dir, "myfmt_plugin", PLUGIN, "text = myfmt_plugin:FORMAT\n")
    (plugin_dir / "x.myfmt").write_text("1 2 3\n4 5 6\n")
    (plugin_dir / "y.myfmt").write_text("1,2\n3,4\n")
    image = tw.open(plugin_dir / "x.myfmt")
    assert image.node.source.format == "text"
    np.testing.assert_array_equal(tw.map(np.negative, image).compute(executor="threads"),
                                  -np.arange(1, 7).reshape(2, 3))
    source = open_source(plugin_dir / "y.myfmt", delimiter=",")
    assert source.read(Box.of_shape(source.shape)).tolist() == [[1, 2], [3, 4]]
    assert source.fingerprint()["format"] == "text"
    with pytest.raises(tw.ParameterError, match=r"format 'text' takes no option 'sep' .*"
                                                r"its options: delimiter"):
        open_source(plugin_dir / "y.myfmt", sep=",")
    assert [f.name for f in registry.formats()][-1] == "text"


def test_a_broken_plugin_is_left_out_with_a_warning(plugin_dir, tmp_path):
    install(plugin_dir, "broken_plugin", "raise ImportError('needs libfoo')\n",
            "broken = broken_plugin:FORMAT\nodd = tilewise.io.registry:BUILTINS\n")
    path = write_tiff(tmp_path / "a.tif", np.ones((4, 4), "uint8"))
    with warnings.catch_warnings(record=True) as quiet:
        warnings.simplefilter("always")
        assert open_source(path).format == "geotiff"
    # (a file a built-in format reads never loads the plug-ins)
    assert not [w for w in quiet if "plug-in" in str(w.message)]
    odd = tmp_path / "a.unknown"
    odd.write_bytes(b"not an image")
    with pytest.warns(UserWarning) as caught, pytest.raises(tw.UnsupportedFormatError):
        open_source(str(odd))
    assert sorted(str(w.message) for w in caught if "plug-in" in str(w.message)) == [
        "tilewise format plug-in 'broken' (broken_plugin:FORMAT) cannot be imported, left out: "
        "ImportError: needs libfoo",
        "tilewise format plug-in 'odd' (tilewise.io.registry:BUILTINS) is a tuple, not a "
        "tilewise.io.Format; left out"]


# Multi-page TIFFs


def test_a_tiff_stack_is_read_by_tifffile_not_as_its_first_page():
    path = data_path("microscopy", "nuclei.tif")
    image = tw.open(path)
    assert (image.shape, image.node.source.format) == ((60, 256, 256), "tiff")
    for fmt in ("geotiff", "gdal"):  # GDAL's own view of it: 60 subdatasets
        with pytest.raises(tw.UnsupportedFormatError,
                           match=r"nuclei\.tif holds 60 pages \(a stack\), which GDAL reads "
                                 r"one at a time; open it with format='tiff'"):
            open_source(path, format=fmt)


@pytest.mark.parametrize("flavour", [{"imagej": True, "metadata": {"axes": "ZYX"}},
                                     {"ome": True, "metadata": {"axes": "ZYX"}},
                                     {"metadata": None}])
def test_imagej_and_ome_stacks_are_read_whole(tmp_path, flavour):
    path = tmp_path / "stack.tif"
    data = np.arange(5 * 16 * 16, dtype="uint16").reshape(5, 16, 16)
    tifffile.imwrite(path, data, **flavour)
    image = tw.open(path)
    assert image.node.source.format == "tiff" and image.axes == ("z", "y", "x")
    np.testing.assert_array_equal(image.compute(tile=4), data)


def test_geotiffs_with_overviews_and_bands_are_single_images(tmp_path):
    dem = tw.open(data_path("dem", "srtm90.tif"))
    assert dem.shape == (2465, 4269) and dem.axes == ("y", "x")
    with rasterio.open(data_path("dem", "srtm90.tif")) as ds:
        assert ds.overviews(1)  # its reduced-resolution pages are no planes
    assert tw.open(data_path("satellite", "landsat.tif")).shape == (7, 1482, 1489)
    data = np.arange(7 * 64 * 64, dtype="uint8").reshape(7, 64, 64)
    path = write_tiff(tmp_path / "planar.tif", data, interleave="band", tiled=True,
                      blockxsize=16, blockysize=16)
    with rasterio.open(path, "r+") as ds:
        ds.build_overviews([2, 4])
    image = tw.open(path)
    assert image.shape == (7, 64, 64)
    np.testing.assert_array_equal(image.compute(), data)


# Handles


def open_descriptors(folder):
    names = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
    return sum(name.startswith(str(folder)) for name in names)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_open_handles_are_bounded(tmp_path):
    files = [write_tiff(tmp_path / f"{i}.tif", np.full((8, 8), i, "uint8"))
             for i in range(handles.CAPACITY + 6)]
    for i, path in enumerate(files):
        source = open_source(path)
        assert source.read(Box.of_shape(source.shape))[0, 0] == i
    assert open_descriptors(tmp_path) == handles.CAPACITY
    for path in files:
        handles.forget(str(path))
    assert open_descriptors(tmp_path) == 0


# Fingerprints


def test_a_file_fingerprint_follows_its_content_and_mtime(tmp_path):
    a = np.arange(64, dtype="float32").reshape(8, 8)
    path = tmp_path / "a.npy"
    np.save(path, a)
    first = open_source(path).fingerprint()
    assert first["source"] == str(path) and first["format"] == "npy"
    assert open_source(path).fingerprint() == first
    st = os.stat(path)
    a[3, 3] = -1
    np.save(path, a)  # same size: only the content differs, once the mtime is put back
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = open_source(path).fingerprint()
    assert second["check"] != first["check"] and second["mtime_ns"] == first["mtime_ns"]
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert open_source(path).fingerprint()["mtime_ns"] != second["mtime_ns"]


def test_a_zarr_fingerprint_follows_its_chunks(tmp_path):
    data = np.arange(64 * 64, dtype="uint16").reshape(64, 64)
    tw.save(tw.open(data), tmp_path / "a.zarr")
    first = tw.open(tmp_path / "a.zarr").node.source.fingerprint()
    assert first["format"] == "zarr" and first["files"] >= 2
    assert tw.open(tmp_path / "a.zarr").node.source.fingerprint() == first
    tw.save(tw.open(data + 1), tmp_path / "a.zarr", overwrite=True)
    assert tw.open(tmp_path / "a.zarr").node.source.fingerprint()["check"] != first["check"]


def test_an_array_fingerprint_follows_its_values_not_its_layout():
    a = np.arange(3 * 50 * 40, dtype="float64").reshape(3, 50, 40)
    first = open_source(a).fingerprint()
    assert (first["shape"], first["dtype"]) == ([3, 50, 40], "float64")
    assert open_source(np.asfortranarray(a)).fingerprint() == first
    strided = np.zeros((3, 100, 40))
    strided[:, ::2] = a
    assert open_source(strided[:, ::2]).fingerprint() == first
    b = a.copy()
    b[2, 49, 39] += 1
    assert open_source(b).fingerprint()["content"] != first["content"]
    assert open_source(a.astype("float32")).fingerprint() != first
    shared = open_source(a).for_processes()
    try:
        assert isinstance(shared, SharedArraySource) and shared.fingerprint() == first
    finally:
        shared.release()


# GDAL settings and cache sizes


def test_configure_gdal_keeps_the_users_cache_size(monkeypatch):
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    configure_gdal()
    configure_gdal()
    assert os.environ["GDAL_CACHEMAX"] == str(GDAL_CACHE // 2**20)
    monkeypatch.setenv("GDAL_CACHEMAX", "512")
    configure_gdal()
    assert os.environ["GDAL_CACHEMAX"] == "512"


def test_cache_bytes_say_which_formats_use_gdal(tmp_path):
    path = write_tiff(tmp_path / "a.tif", np.ones((4, 4), "uint8"))
    np.save(tmp_path / "a.npy", np.ones((4, 4)))
    tiff, npy = open_source(path), open_source(tmp_path / "a.npy")
    assert (tiff.cache_bytes, npy.cache_bytes) == (GDAL_CACHE, 0)
    assert (sink_class("a.tif").cache_bytes, sink_class("a.zarr").cache_bytes) == (GDAL_CACHE, 0)
    assert tiff.paths == (str(path),) and open_source(np.ones(2)).paths == ()


# Metadata fields


def test_rescaling_a_real_transform_keeps_its_origin():
    source = open_source(data_path("dem", "srtm90.tif"))
    t = source.meta["transform"]
    four = {"y": Fraction(4), "x": Fraction(4)}
    coarse = metadata.rescaled(source.meta, source.axes, four)
    assert coarse["transform"] == Affine(4 * t.a, 0, t.c, 0, 4 * t.e, t.f)
    assert coarse["crs"] == source.meta["crs"] and coarse["nodata"] == source.meta["nodata"]
    # A window cut first, then rescaled: its pixel (r, c) covers input pixels from
    # (y0 + 4r, x0 + 4c), and its origin is the window's.
    part = metadata.sliced(source.meta, source.axes, (100, 300), None)
    both = metadata.rescaled(part, source.axes, four)["transform"]
    for r, c in [(0, 0), (1, 0), (7, 5)]:
        assert both @ (c, r) == pytest.approx(t @ (300 + 4 * c, 100 + 4 * r))
    half = metadata.rescaled(source.meta, source.axes, {"x": Fraction(1, 2)})["transform"]
    assert (half.a, half.e) == (t.a / 2, t.e)
    assert metadata.rescaled(source.meta, source.axes, {}) == dict(source.meta)


def test_rescaling_checks_its_factors_and_drops_band_names_with_bands():
    meta = {"band_names": ("r", "g"), "transform": Affine(1, 0, 0, 0, -1, 0)}
    axes = ("c", "y", "x")
    assert metadata.rescaled(meta, axes, {"y": Fraction(2)})["band_names"] == ("r", "g")
    assert metadata.rescaled(meta, axes, {"c": Fraction(2)})["band_names"] is None
    with pytest.raises(tw.ParameterError, match=r"axes \['z'\]"):
        metadata.rescaled(meta, axes, {"z": Fraction(2)})
    with pytest.raises(tw.ParameterError, match="positive"):
        metadata.rescaled(meta, axes, {"x": Fraction(0)})


def test_a_registered_field_is_sliced_rescaled_stored_and_compared(monkeypatch):
    """A non-affine georeference (as a FITS WCS would be): its reference pixel per axis."""
    field = metadata.Field(
        "refpix",
        to_json=lambda v: {k: [p.numerator, p.denominator] for k, p in v.items()},
        from_json=lambda v: {k: Fraction(*p) for k, p in v.items()},
        shift=lambda v, offsets: {k: p - offsets[k] for k, p in v.items()},
        scale=lambda v, factors: {k: p / factors[k] for k, p in v.items()},
    )
    monkeypatch.setitem(metadata.FIELDS, "refpix", field)
    meta = {"refpix": {"y": Fraction(10), "x": Fraction(20)}, "nodata": 0}
    cut = metadata.sliced(meta, ("y", "x"), (4, 8), None)
    assert cut["refpix"] == {"y": 6, "x": 12}
    assert metadata.rescaled(cut, ("y", "x"), {"x": Fraction(3)})["refpix"] == \
        {"y": 6, "x": 4}
    assert metadata.from_attrs(metadata.to_attrs(cut)) == cut
    assert "refpix" in metadata.same_grid(meta, cut)
    assert "refpix" in metadata.known_keys()


def test_attrs_roundtrip_of_the_built_in_fields():
    meta = dict(open_source(data_path("dem", "co_elevation_roi.tif")).meta)
    attrs = metadata.to_attrs(meta)
    assert isinstance(attrs["crs"], str) and isinstance(attrs["transform"], list)
    back = metadata.from_attrs(attrs)
    assert back == meta and metadata.same_grid(back, meta) is None

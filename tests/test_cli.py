"""The command line, driven as a user would: a subprocess, its output and exit code."""

import subprocess
import sys

import numpy as np
from conftest import data_path

import tilewise as tw


def tilewise(*args):
    return subprocess.run([sys.executable, "-m", "tilewise.cli", *map(str, args)],
                          capture_output=True, text=True)


def test_info_on_a_real_geotiff():
    done = tilewise("info", data_path("dem", "srtm90.tif"))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "2465 x 4269  axes yx" in out and "int16" in out and "512 x 512" in out
    assert "EPSG:4326" in out and "overviews  1/2, 1/4, 1/8" in out


def test_info_on_zarr(tmp_path):
    tw.save(tw.open(np.zeros((3, 40, 50), "float32"), axes="zyx"), tmp_path / "a.zarr")
    done = tilewise("info", tmp_path / "a.zarr")
    assert done.returncode == 0, done.stderr
    assert "3 x 40 x 50  axes zyx" in done.stdout and "crs        none" in done.stdout


def test_bad_input_is_one_sentence_and_exit_2(tmp_path):
    done = tilewise("info", tmp_path / "missing.tif")
    assert done.returncode == 2
    assert done.stderr.strip() == f"tilewise: input {tmp_path / 'missing.tif'} does not exist"
    assert "Traceback" not in done.stderr


def test_bad_usage_exits_2():
    assert tilewise().returncode == 2
    assert tilewise("frobnicate").returncode == 2


def test_preview_of_a_real_geotiff(tmp_path):
    import matplotlib.image

    out = tmp_path / "p.png"
    done = tilewise("preview", data_path("satellite", "landsat.tif"), "-o", out,
                    "--bands", "3,2,1", "--max-size", "300")
    assert done.returncode == 0, done.stderr
    picture = matplotlib.image.imread(out)
    assert picture.ndim == 3 and min(picture.shape[:2]) > 100


def test_preview_reads_the_overviews_not_full_resolution(tmp_path):
    """A GeoTIFF whose overviews are stale: built from red-left/green-right pixels, which
    were then overwritten at full resolution with green-left/red-right. A preview read from
    the overviews is red on the left; one that reads every pixel is green there."""
    import matplotlib.image
    import rasterio
    from rasterio.enums import Resampling

    def halves(left, right):
        a = np.full((3, 512, 512), 50, "uint8")
        a[0, :, :256], a[0, :, 256:] = left, right
        a[1, :, :256], a[1, :, 256:] = right, left
        return a

    path = tmp_path / "stale.tif"
    with rasterio.open(path, "w", driver="GTiff", width=512, height=512, count=3,
                       dtype="uint8", tiled=True, blockxsize=256, blockysize=256) as ds:
        ds.write(halves(200, 10))  # red left, green right
    with rasterio.open(path, "r+") as ds:
        ds.build_overviews([2, 4], Resampling.average)
    with rasterio.open(path, "r+") as ds:
        ds.write(halves(10, 200))  # full resolution only: green left, red right
    with rasterio.open(path) as ds:
        assert ds.overviews(1) == [2, 4] and ds.read(1)[0, 0] == 10

    out = tmp_path / "p.png"
    done = tilewise("preview", path, "-o", out, "--max-size", "128")
    assert done.returncode == 0, done.stderr
    rgb = matplotlib.image.imread(out)[..., :3]
    red = (rgb[..., 0] > 0.9) & (rgb[..., 1] < 0.1) & (rgb[..., 2] < 0.1)
    green = (rgb[..., 1] > 0.9) & (rgb[..., 0] < 0.1) & (rgb[..., 2] < 0.1)
    assert red.sum() > 1000 and green.sum() > 1000
    assert np.nonzero(red)[1].max() < np.nonzero(green)[1].min()  # red entirely left


def test_preview_sample_of_npy_and_zarr_is_strided(tmp_path):
    from tilewise.preview import sample

    a = np.arange(3 * 50 * 70, dtype="float32").reshape(3, 50, 70)
    np.save(tmp_path / "a.npy", a)
    data, _ = sample(str(tmp_path / "a.npy"), max_size=20)
    np.testing.assert_array_equal(data[0], a[1, ::4, ::4])
    tw.save(tw.open(a, axes="cyx"), tmp_path / "a.zarr")
    data, _ = sample(str(tmp_path / "a.zarr"), max_size=35)
    np.testing.assert_array_equal(data, a[:, ::2, ::2])
    done = tilewise("preview", tmp_path / "a.zarr", "-o", tmp_path / "z.png")
    assert done.returncode == 0, done.stderr


def test_preview_refuses_bad_bands(tmp_path):
    done = tilewise("preview", data_path("satellite", "landsat.tif"), "-o", tmp_path / "x.png",
                    "--bands", "1,9,2")
    assert done.returncode == 2 and "bands=(1, 9, 2)" in done.stderr
    assert not (tmp_path / "x.png").exists()

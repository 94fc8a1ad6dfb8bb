"""Demo datasets: found locally, checked by SHA-256, fetched from PyPI when missing."""

import os
import shutil

import pytest
from conftest import DATA, data_path

import tilewise as tw
from tilewise import datasets


def test_local_folder_is_used_and_checked(monkeypatch):
    data_path("dem", "srtm90.tif")
    monkeypatch.setenv("TILEWISE_DATA", DATA)
    assert os.path.samefile(datasets.path("srtm90"), data_path("dem", "srtm90.tif"))
    assert tw.open(datasets.path("landsat")).shape == (7, 1482, 1489)


def test_a_file_that_is_not_the_dataset_is_refused(tmp_path, monkeypatch):
    (tmp_path / "srtm90.tif").write_bytes(b"not a DEM")
    monkeypatch.setenv("TILEWISE_DATA", str(tmp_path))
    with pytest.raises(tw.InputError, match="SHA-256 does not match"):
        datasets.path("srtm90")


def test_unknown_dataset():
    with pytest.raises(tw.ParameterError, match="'moon' is unknown"):
        datasets.path("moon")


def wheel(folder, member, data):
    """A wheel file as PyPI serves it (a zip with its dist-info), holding `data` at `member`."""
    import zipfile

    folder.mkdir()
    info = "localtileserver-1.0.0.dist-info"
    with zipfile.ZipFile(folder / "localtileserver-1.0.0-py3-none-any.whl", "w") as zf:
        zf.writestr(member, data)
        zf.writestr(f"{info}/METADATA",
                    "Metadata-Version: 2.1\nName: localtileserver\nVersion: 1.0.0\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n"
                                     "Tag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")


@pytest.fixture
def local_pypi(tmp_path, monkeypatch):
    """The real `pip download` of `path`, served from a folder instead of PyPI: no network,
    and nothing of tilewise replaced."""
    monkeypatch.delenv("TILEWISE_DATA", raising=False)
    monkeypatch.setenv("TILEWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "wheels"))
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return tmp_path


def test_a_download_says_what_it_fetches_and_fills_the_cache_once(local_pypi, capfd):
    ds = datasets.DATASETS["co_elevation"]
    with open(data_path("dem", "co_elevation_roi.tif"), "rb") as f:
        wheel(local_pypi / "wheels", ds.member, f.read())
    cache = local_pypi / "cache"
    first = datasets.path("co_elevation")
    assert first == str(cache / "co_elevation_roi.tif")
    assert capfd.readouterr().err == (
        "tilewise: downloading co_elevation_roi.tif (part of localtileserver==1.0.0 from PyPI, "
        f"~34 MB) into {cache} ...\n")
    shutil.rmtree(local_pypi / "wheels")  # a second fetch would now fail
    assert datasets.path("co_elevation") == first
    assert capfd.readouterr().err == ""
    assert sorted(os.listdir(cache)) == ["co_elevation_roi.tif"]
    assert tw.open(first).shape == (633, 1007)


def test_a_download_that_is_not_the_dataset_is_refused_and_not_cached(local_pypi):
    wheel(local_pypi / "wheels", datasets.DATASETS["srtm90"].member, b"not the DEM")
    with pytest.raises(tw.InputError, match=r"'srtm90' from localtileserver==1\.0\.0 does not"):
        datasets.path("srtm90")
    assert os.listdir(local_pypi / "cache") == []


def test_a_failed_download_names_the_wheel(local_pypi):
    (local_pypi / "wheels").mkdir()
    with pytest.raises(tw.InputError, match=r"pip download localtileserver==1\.0\.0 failed: .*"
                                            "No matching distribution"):
        datasets.path("landsat")


def test_the_download_line_shows_the_home_folder_as_a_tilde():
    cache = os.path.join(os.path.expanduser("~"), ".cache", "tilewise")
    assert datasets.download_message(datasets.DATASETS["srtm90"], cache) == (
        "tilewise: downloading srtm90.tif (part of localtileserver==1.0.0 from PyPI, ~34 MB) "
        "into ~/.cache/tilewise ...")

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


def test_cache_is_filled_once(tmp_path, monkeypatch):
    """Fetching from PyPI is replaced by the local copy, so the test needs no network."""
    source = data_path("dem", "co_elevation_roi.tif")
    calls = []

    def fetch(ds):
        calls.append(ds.name)
        with open(source, "rb") as f:
            return f.read()

    monkeypatch.delenv("TILEWISE_DATA", raising=False)
    monkeypatch.setenv("TILEWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "_fetch", fetch)
    first = datasets.path("co_elevation")
    second = datasets.path("co_elevation")
    assert first == second == str(tmp_path / "cache" / "co_elevation_roi.tif")
    assert calls == ["co_elevation"]
    assert sorted(os.listdir(tmp_path / "cache")) == ["co_elevation_roi.tif"]
    shutil.rmtree(tmp_path / "cache")

"""Object stores for real: an S3-compatible server (moto's) on loopback, inputs read through
GDAL's /vsis3/ and through fsspec, Zarr outputs written by a cluster's workers, journals kept
in the store, and resumed runs. Nothing here reaches the network."""

import json
import logging

import numpy as np
import pytest
import zarr
from conftest import data_path
from moto.server import ThreadedMotoServer

import tilewise as tw
from tilewise import journal
from tilewise import library as ops
from tilewise.io import objectstore

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on 127.0.0.1 at a free port, with a bucket; the endpoint named the
    GDAL way (AWS_S3_ENDPOINT, AWS_HTTPS=NO, AWS_VIRTUAL_HOSTING=FALSE), which fsspec follows
    too."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as env:
        for key, value in CREDENTIALS.items():
            env.setenv(key, value)
        for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
            env.delenv(key, raising=False)
        env.setenv("AWS_S3_ENDPOINT", f"{host}:{port}")
        env.setenv("AWS_HTTPS", "NO")
        env.setenv("AWS_VIRTUAL_HOSTING", "FALSE")
        fs, _ = objectstore.filesystem("s3://bucket")
        fs.mkdir("bucket")
        yield f"http://{host}:{port}"
    server.stop()


def dem():
    return tw.open(data_path("dem", "srtm90.tif"))[1000:1300, 2000:2300]


def uploaded_dem(tmp_path, key):
    local = tmp_path / "dem.tif"
    tw.save(dem(), local, tile=128, progress=False)
    fs, _ = objectstore.filesystem("s3://bucket")
    fs.put(str(local), f"bucket/{key}")
    return str(local)


def test_zarr_in_and_out_on_a_cluster_with_storage_options_alone(dask_client, s3,
                                                                 monkeypatch):
    # The cluster started before the server: its workers know no endpoint and no key, and
    # this process forgets them too. Only storage_options= reach the store.
    options = {"endpoint_url": s3, "key": "testing", "secret": "testing"}
    for key in ("AWS_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    source = dem().compute()
    stored = zarr.create_array("s3://bucket/in.zarr", shape=source.shape, chunks=(100, 100),
                               dtype=source.dtype, dimension_names=["y", "x"],
                               storage_options=options)
    stored[:] = source
    image = ops.hillshade(ops.gaussian(tw.open("s3://bucket/in.zarr", storage_options=options),
                                       sigma=1.5))
    report = tw.save(image, "s3://bucket/cluster.zarr", tile=100, scheduler=dask_client,
                     storage_options=options, progress=False)
    assert report.executor == "dask" and report.tiles == 9
    local = ops.hillshade(ops.gaussian(tw.open(source), sigma=1.5)).compute(executor="serial")
    written = zarr.open_array("s3://bucket/cluster.zarr", mode="r", storage_options=options)
    assert np.array_equal(written[:], local)


def test_geotiff_in_through_gdal_s3_urls_and_zarr_out(s3, tmp_path):
    local = uploaded_dem(tmp_path, "dem.tif")
    for url in ("s3://bucket/dem.tif", "/vsis3/bucket/dem.tif"):
        remote = tw.open(url)
        assert remote.meta["crs"] == dem().meta["crs"]
        assert remote.meta["transform"] == dem().meta["transform"]
        assert np.array_equal(remote.compute(), dem().compute())
    identity = tw.open("s3://bucket/dem.tif").node.fingerprint()
    assert identity["size"] > 0 and identity["check"]  # the object's ETag, nothing read
    image = ops.slope(tw.open("s3://bucket/dem.tif"))
    tw.save(image, "s3://bucket/slope.zarr", tile=128, executor="threads", workers=2,
            progress=False)
    got = tw.open("s3://bucket/slope.zarr")
    assert got.meta["crs"] == dem().meta["crs"]
    assert np.array_equal(got.compute(), ops.slope(tw.open(local)).compute())


class Stop(Exception):
    pass


def test_an_interrupted_store_output_is_no_array_until_resumed(s3, tmp_path):
    uploaded_dem(tmp_path, "resume.tif")
    image = ops.gaussian(tw.open("s3://bucket/resume.tif"), sigma=2.0)
    out = "s3://bucket/resumed.zarr"

    def stop(progress):
        if progress.done == 4:
            raise Stop

    with pytest.raises(Stop):
        tw.save(image, out, tile=64, progress=stop)
    with pytest.raises(FileNotFoundError):  # chunks, but no zarr.json: no array to anyone
        zarr.open_array(out, mode="r", storage_options=objectstore.storage_options(out))
    record = journal.read(journal.path_of(out))
    assert record is not None and not record.complete and record.count >= 1
    report = tw.save(image, out, tile=64, progress=False)
    assert report.resumed == record.count and report.tiles + report.resumed == 25
    assert np.array_equal(tw.open(out).compute(), image.compute(executor="serial"))
    assert not objectstore.exists(out + "/tilewise.pending.json")
    assert journal.read(journal.path_of(out)).complete
    assert tw.save(image, out, tile=64, progress=False).tiles == 0  # nothing left to do
    fs, _ = objectstore.filesystem(out)
    fs.pipe_file("bucket/resume.tif", b"changed")  # a new ETag and size
    with pytest.raises(tw.OutputExistsError, match="different pipeline"):
        tw.save(image, out, tile=64, progress=False)


def test_a_second_run_writing_one_store_output_is_refused(s3):
    path = "s3://bucket/contended.zarr.journal"
    first, second = journal.StoreJournal(path), journal.StoreJournal(path)
    first.start({"nodes": []}, (8, 8), 4, True, 0)
    with pytest.raises(tw.OutputError, match="being written by another tilewise run"):
        second.start({"nodes": []}, (8, 8), 4, True, 0)
    first.record(2)
    first.complete()
    lines = objectstore.read(path)[0].decode().splitlines()
    assert json.loads(lines[0])["tiles"] == 4 and lines[2:] == ["2", '{"complete": true}']


def test_formats_other_than_zarr_are_not_written_to_a_store(s3):
    with pytest.raises(tw.OutputError, match="writes only Zarr"):
        tw.save(tw.open(np.zeros((8, 8))), "s3://bucket/out.tif", progress=False)

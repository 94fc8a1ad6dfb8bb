"""The dask executor on a real LocalCluster: the same bytes as the local executors, worker loss
costing only its tiles, a scheduler that never holds more than a bounded number of tasks, a
lost scheduler named and resumed from."""

import os
import signal

import dask
import numpy as np
import pytest
import rasterio
import zarr
from conftest import data_path

import tilewise as tw
from tilewise import library as ops
from tilewise.cli import main as cli
from tilewise.executors import DaskExecutor
from tilewise.executors import distributed as dask_executor
from tilewise.executors.distributed import TASKS_PER_THREAD
from tilewise.run import plan


def dem():
    return tw.open(data_path("dem", "srtm90.tif"))[1000:1400, 2000:2500]


def outputs(image_set, folder, **options):
    paths = [os.path.join(folder, name) for name in ("relief.tif", "relief.zarr",
                                                     "stretched.tif")]
    report = tw.save(image_set, paths, tile=128, progress=False, **options)
    return report, [read(p) for p in paths]


def read(path):
    if path.endswith(".zarr"):
        arr = zarr.open_array(path, mode="r")
        return arr[:], dict(arr.attrs)
    with rasterio.open(path) as ds:
        # The nodata value by its text: NaN (a float hillshade's) never equals itself.
        return ds.read(), (ds.crs, ds.transform, repr(ds.nodata), ds.dtypes)


def pipeline():
    smooth = ops.gaussian(dem(), sigma=1.5)
    relief = ops.hillshade(smooth)
    return [relief, relief, ops.stretch(smooth)]  # stretch: percentiles computed first


def on_cluster(client, batch):
    """Options for the dask executor on `client`: tiles batched by measured time (None) or
    `batch` tiles a task."""
    if batch is None:
        return {"executor": "dask", "scheduler": client}
    return {"executor": DaskExecutor(scheduler=client, batch=batch)}


@pytest.mark.parametrize("batch", [None, 3])
def test_outputs_equal_the_local_executors_bit_for_bit(tmp_path, dask_client, batch):
    """GeoTIFF tiles sent back to the driver, Zarr written by the workers, percentiles reduced
    on the cluster: the same bytes, whether tiles go one or several a task."""
    os.makedirs(tmp_path / "threads")
    os.makedirs(tmp_path / "dask")
    _, local = outputs(pipeline(), str(tmp_path / "threads"), executor="threads", workers=2)
    report, remote = outputs(pipeline(), str(tmp_path / "dask"),
                             **on_cluster(dask_client, batch))
    assert report.executor == "dask" and report.workers == 2 and report.tiles == 4 * 4
    for (a, meta_a), (b, meta_b) in zip(local, remote, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
        assert meta_a == meta_b


def killing(a, *, marker, tile):
    """Kills its own worker process on tile (1, 1), the first time only."""
    if tile.index == (1, 1) and not tile.probe:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass
        else:
            os.kill(os.getpid(), signal.SIGKILL)
    return a * 2


@pytest.mark.parametrize("batch", [1, 4])
def test_a_worker_killed_mid_run_costs_only_its_tiles(tmp_path, dask_client, batch):
    """With 4 tiles a task, tile (1, 1) is the second of its task (tiles 8 to 11): the worker
    dies after writing tile 8, and the task runs again whole on another worker."""
    marker = str(tmp_path / "killed")
    image = tw.map(killing, ops.gaussian(dem(), sigma=1.0), marker=marker)
    report = tw.save(image, tmp_path / "out.zarr", tile=64, progress=False,
                     **on_cluster(dask_client, batch))
    assert os.path.exists(marker)  # a worker did die
    assert report.tiles == 7 * 8 and report.resumed == 0
    records = [int(line) for line in (tmp_path / "out.zarr.journal").read_text().split()
               if line.isdigit()]
    assert sorted(records) == list(range(7 * 8))  # each tile journaled once
    expected = ops.gaussian(dem(), sigma=1.0).compute(executor="serial") * 2
    assert np.array_equal(zarr.open_array(tmp_path / "out.zarr")[:], expected)
    dask_client.wait_for_workers(2, timeout=60)  # the nanny replaced it


def test_tiles_per_task_follow_the_measured_time_and_the_workers_memory():
    batches = dask_executor.Batches(result_bytes=2**20)
    assert batches.size() == 1  # until a task reports its time
    batches.report(dask_executor.Done([None] * 10, 10 * 1e-3, 0))
    assert batches.size() == round(dask_executor.TASK_SECONDS / 1e-3)
    batches.report(dask_executor.Done([None] * 10, 10 * 1e-3, 10 * 2**17))  # smoothed
    assert batches.size() == 2**20 // 2**16  # results of a task fit their share of memory
    fast = dask_executor.Batches()
    fast.report(dask_executor.Done([None] * 10, 0.0, 0))
    assert fast.size() == dask_executor.MAX_BATCH
    slow = dask_executor.Batches()
    slow.report(dask_executor.Done([None], 3.0, 2**30))
    assert slow.size() == 1
    assert dask_executor.Batches(fixed=5).size() == 5
    with pytest.raises(tw.ParameterError, match="batch must be a positive integer"):
        DaskExecutor(batch=0)


def always_killing(a, *, tile):
    if tile.index == (0, 1) and not tile.probe:  # the probe runs in the driver
        os.kill(os.getpid(), signal.SIGKILL)
    return a


def test_a_tile_that_kills_every_worker_gives_up_with_a_worker_lost_error(dask_client):
    """The task of tiles (0, 0) and (0, 1) is given up on; then each tile has a task of its
    own, and (0, 1), the second (so no tile waits behind it on its worker), is given up on
    until its retries are spent (a worker that dies with the only copy of the scattered work
    costs a retry too)."""

    def allowed(dask_scheduler, n):
        old, dask_scheduler.allowed_failures = dask_scheduler.allowed_failures, n
        return old

    old = dask_client.run_on_scheduler(allowed, n=0)
    try:
        with pytest.raises(tw.WorkerLostError,
                           match=r"dask executor died .* killed the workers that ran it [34] times"
                           r".* while computing tile\(s\) \(0, 1\)$"):
            tw.map(always_killing, tw.open(np.zeros((8, 16)))).compute(
                executor=DaskExecutor(scheduler=dask_client, batch=2), tile=8)
    finally:
        dask_client.run_on_scheduler(allowed, n=old)
        dask_client.wait_for_workers(2, timeout=60)


class Stop(Exception):
    pass


def test_a_100000_tile_run_keeps_few_tasks_on_the_scheduler(tmp_path, dask_client):
    image = tw.map(np.negative, tw.open(np.arange(500 * 800, dtype="int32").reshape(500, 800)))
    planned = plan(image, tmp_path / "out.zarr", tile=2, scheduler=dask_client)
    assert len(planned.plan) == 100_000
    held = []

    def watch(progress):
        if progress.done % 20 == 1:
            held.append(dask_client.run_on_scheduler(lambda dask_scheduler:
                                                     len(dask_scheduler.tasks)))
        if progress.done >= 300:
            raise Stop

    with pytest.raises(Stop):
        tw.save(image, tmp_path / "out.zarr", tile=2, scheduler=dask_client, progress=watch)
    bound = 2 * TASKS_PER_THREAD * 2 + 1  # the tasks in flight, those just released, the work
    assert held and max(held) <= bound, held
    done = tw.save(image, tmp_path / "small.zarr", tile=100, scheduler=dask_client,
                   progress=False)
    assert done.tiles == 40  # the cluster is fine after the interrupted run


def test_memory_per_worker_follows_the_workers_limits(tmp_path, dask_client):
    limits = [w["memory_limit"] // w["nthreads"]
              for w in dask_client.scheduler_info(n_workers=-1)["workers"].values()]
    image = tw.map(np.negative, tw.open(np.zeros((64, 64))))
    planned = plan(image, tmp_path / "out.zarr", scheduler=dask_client)
    assert planned.budget == int(min(limits) * 2 * 0.8)  # below dask's pause threshold
    smaller = plan(image, tmp_path / "out.zarr", scheduler=dask_client, memory="300MiB")
    assert smaller.budget == 300 * 2**20


def test_the_scheduler_lost_mid_run_is_named_and_the_rerun_resumes(tmp_path):
    from distributed import Client, LocalCluster

    image = ops.gaussian(dem(), sigma=1.0)
    out = tmp_path / "out.zarr"

    def close_scheduler(progress):
        if progress.done == 5:
            cluster.scheduler.loop.add_callback(cluster.scheduler.close)

    # Workers of the closed scheduler give up reconnecting soon, so the test ends soon.
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), \
            LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                         dashboard_address=":0") as cluster, Client(cluster) as client, \
            pytest.raises(tw.ClusterLostError, match="connection to the dask scheduler at "
                          f"{cluster.scheduler_address} was lost .the scheduler stopped") as lost:
        tw.save(image, out, tile=32, scheduler=client, progress=close_scheduler)
    assert lost.value.kept >= 5
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        report = tw.save(image, out, tile=32, scheduler=client, progress=False)
    assert report.resumed >= 5 and report.tiles + report.resumed == 13 * 16
    assert np.array_equal(zarr.open_array(out)[:], image.compute(executor="serial"))


def test_the_command_line_runs_on_a_scheduler_address(tmp_path, dask_client, capsys):
    pipeline_file = tmp_path / "p.yaml"
    pipeline_file.write_text(
        f"inputs: {{dem: {data_path('dem', 'srtm90.tif')}}}\n"
        "steps: {smooth: {op: gaussian, input: dem, params: {sigma: 1.0}}}\n"
        "outputs: {smooth: out/smooth.zarr}\n"
        f"run: {{executor: dask, scheduler: '{dask_client.scheduler.address}', tile: 1024}}\n")
    assert cli(["plan", str(pipeline_file)]) == 0
    assert f"executor   dask x 2, at most {2 * TASKS_PER_THREAD} tasks in flight, each of " \
        "the tiles that take about" in capsys.readouterr().out
    assert cli(["run", str(pipeline_file)]) == 0
    err = capsys.readouterr().err
    assert f"dask cluster {dask_client.scheduler.address}, 2 workers" in err
    assert "dashboard http" in err
    whole = ops.gaussian(tw.open(data_path("dem", "srtm90.tif")), sigma=1.0)
    got = zarr.open_array(tmp_path / "out" / "smooth.zarr")
    assert np.array_equal(got[:600, :700], whole[:600, :700].compute())
    assert cli(["run", str(pipeline_file), "--quiet", "--overwrite", "--executor", "dask",
                "--scheduler", dask_client.scheduler.address]) == 0
    assert "dashboard" not in capsys.readouterr().err


def test_the_dashboard_link_printed_serves_the_dashboard(dask_client):
    import re
    import urllib.request

    pytest.importorskip("bokeh")  # the `dashboard` extra; without it dask serves an apology
    line = DaskExecutor(scheduler=dask_client).notice()
    [link] = re.findall(r"dashboard (http\S+)", line)
    with urllib.request.urlopen(link, timeout=30) as page:
        body = page.read()
    assert b"bokeh.min.js" in body and b"Dask needs bokeh" not in body


def test_bad_scheduler_options_are_one_sentence():
    image = tw.open(np.zeros((8, 8)))
    with pytest.raises(tw.ParameterError, match="scheduler= is for executor='dask'"):
        image.compute(executor="threads", scheduler="tcp://127.0.0.1:1")
    with pytest.raises(tw.ParameterError, match="leave workers out"):
        image.compute(scheduler="tcp://127.0.0.1:1", workers=2)
    with pytest.raises(tw.ParameterError, match="not a scheduler address"):
        DaskExecutor(scheduler="localhost")


def test_executor_dask_alone_starts_a_local_cluster_and_closes_it():
    import psutil

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    a = np.arange(40 * 30, dtype="float32").reshape(40, 30)
    got = tw.map(np.negative, tw.open(a)).compute(executor="dask", workers=1, tile=16)
    assert np.array_equal(got, -a)
    left = {p.pid for p in psutil.Process().children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE} - before
    assert not left  # the worker process and its nanny are gone with the run

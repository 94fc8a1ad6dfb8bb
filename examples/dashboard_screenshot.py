"""A screenshot of the dask dashboard while tilewise runs on a LocalCluster, for the docs.

    .venv/bin/python examples/dashboard_screenshot.py [OUT.png] [--browser PATH]

Runs the W2 chain of benchmarks/chain.py on an 8192 x 8192 GeoTIFF (made by
benchmarks/make_data.py if missing) in 512 x 512 tiles on a LocalCluster of 2 single-threaded
workers, and a few seconds into the run saves the dashboard's status page (memory per worker,
task stream, progress; default docs/dashboard.png) as a headless Chromium renders it, driven by
Playwright. Needs the `bench` extra (bokeh, playwright) and a Chromium: Playwright's own
download, or Debian's `chromium-headless-shell` package (found on the PATH, or `--browser`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))

from chain import pipeline  # noqa: E402
from make_data import make  # noqa: E402

import tilewise as tw  # noqa: E402

#: Browsers looked for on the PATH when none is given (else Playwright's own download).
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser")
#: Seconds into the run when the page is saved, and the page's size in pixels.
AFTER = 4.0
SIZE = {"width": 1600, "height": 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=os.path.join(HERE, "..", "docs",
                                                               "dashboard.png"))
    parser.add_argument("--browser", default=None)
    args = parser.parse_args()
    browser = args.browser or next((b for b in map(shutil.which, BROWSERS) if b), None)

    from distributed import Client, LocalCluster
    from playwright.sync_api import sync_playwright

    src = make(os.path.join(HERE, "..", "benchmarks", "data", "dem_8192.tif"), 8192)
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=":0") as cluster, Client(cluster) as client, \
            tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        page = chromium.new_page(viewport=SIZE)
        page.goto(client.dashboard_link)  # the plots draw themselves as the run goes
        run = threading.Thread(target=tw.save, args=(pipeline(tw.open(src)),
                                                     os.path.join(folder, "w2.zarr")),
                               kwargs={"scheduler": client, "tile": 512})
        run.start()
        page.wait_for_timeout(AFTER * 1000)
        page.screenshot(path=args.out)
        chromium.close()
        run.join()
    print(f"dashboard during the run: {args.out}")


if __name__ == "__main__":
    main()

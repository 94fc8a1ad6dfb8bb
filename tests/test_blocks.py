"""Block-wise reads assemble exactly the window a direct read gives, cached or not."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilewise.io import blocks
from tilewise.regions import Box


@st.composite
def windows(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 30)) for _ in range(ndim))
    block = tuple(draw(st.integers(1, n)) for n in shape)
    boxes = []
    for _ in range(draw(st.integers(1, 6))):
        start = tuple(draw(st.integers(0, n - 1)) for n in shape)
        stop = tuple(draw(st.integers(a + 1, n)) for a, n in zip(start, shape, strict=True))
        boxes.append(Box(start, stop))
    return shape, block, boxes


@settings(max_examples=150, deadline=None)
@given(windows(), st.integers(0, 10**6))
def test_blocked_reads_equal_direct_reads(case, capacity):
    shape, block, boxes = case
    image = np.arange(np.prod(shape), dtype="int32").reshape(shape)
    calls = []

    def read(box):
        calls.append(box)
        return image[box.slices].copy()

    blocks.cache.clear()
    old = blocks.cache.capacity
    blocks.cache.capacity = capacity
    try:
        for box in boxes:
            got = blocks.read_blocked(("test", id(image)), box, shape, block, image.dtype, read)
            np.testing.assert_array_equal(got, image[box.slices])
        assert blocks.cache.used <= capacity
    finally:
        blocks.cache.capacity = old
        blocks.cache.clear()


def test_a_shared_halo_block_is_decoded_once():
    shape, block = (8, 16), (8, 4)
    image = np.arange(128, dtype="float32").reshape(shape)
    decoded = []

    def read(box):
        decoded.append(box)
        return image[box.slices].copy()

    blocks.cache.clear()
    left = blocks.read_blocked("img", Box((0, 0), (8, 9)), shape, block, image.dtype, read)
    right = blocks.read_blocked("img", Box((0, 7), (8, 16)), shape, block, image.dtype, read)
    blocks.cache.clear()
    np.testing.assert_array_equal(left, image[:, :9])
    np.testing.assert_array_equal(right, image[:, 7:])
    # Left: block 1, whole but cached, as the right window's halo reaches into it, then
    # block 2, partial (cached), then block 0. Right: blocks 1 and 2 come from the cache,
    # block 3 is whole.
    assert decoded == [Box((0, 4), (8, 8)), Box((0, 8), (8, 12)), Box((0, 0), (8, 4)),
                       Box((0, 12), (8, 16))]


def test_threads_needing_one_block_decode_it_once():
    shape, block = (64, 64), (64, 8)
    image = np.arange(64 * 64, dtype="float32").reshape(shape)
    decoded = []
    started = threading.Barrier(8)

    def read(box):
        decoded.append(box)
        time.sleep(0.05)  # every thread asks for the block while one decodes it
        return image[box.slices].copy()

    def window(_):
        started.wait()  # eight windows inside block 1, asked for at once
        return blocks.read_blocked("img", Box((0, 9), (64, 15)), shape, block, image.dtype,
                                   read)

    blocks.cache.clear()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(window, range(8)))
    blocks.cache.clear()
    for got in results:
        np.testing.assert_array_equal(got, image[:, 9:15])
    assert decoded == [Box((0, 8), (64, 16))]


def test_a_neighbour_waits_for_the_shared_blocks_only():
    """A window decodes the blocks it shares first: a neighbour needing them goes on while
    the rest of the window is still being read (two threads on neighbouring strips would
    otherwise read one after the other)."""
    shape, block = (8, 16), (8, 4)
    image = np.arange(128, dtype="float32").reshape(shape)
    inner, finish = threading.Event(), threading.Event()

    def read(box):
        if box == Box((0, 0), (8, 4)):  # the left window's block of its own
            inner.set()
            finish.wait(timeout=10)
        return image[box.slices].copy()

    blocks.cache.clear()
    with ThreadPoolExecutor(2) as pool:
        left = pool.submit(blocks.read_blocked, "img", Box((0, 0), (8, 9)), shape, block,
                           image.dtype, read)
        assert inner.wait(timeout=10)
        right = pool.submit(blocks.read_blocked, "img", Box((0, 7), (8, 16)), shape, block,
                            image.dtype, read)
        try:
            np.testing.assert_array_equal(right.result(timeout=5), image[:, 7:])
            assert not left.done()
        finally:
            finish.set()
        np.testing.assert_array_equal(left.result(), image[:, :9])
    blocks.cache.clear()


def test_neighbours_split_the_blocks_they_share():
    """Blocks are claimed as they are decoded, not all up front: while one thread decodes the
    first block two windows share, the other decodes the second."""
    shape, block = (8, 16), (8, 4)
    image = np.arange(128, dtype="float32").reshape(shape)
    first, second = Box((0, 4), (8, 8)), Box((0, 8), (8, 12))  # both windows' blocks 1, 2
    decoding_first, second_done = threading.Event(), threading.Event()
    decoded_by = {}

    def read(box):
        decoded_by[box] = threading.current_thread().name
        if box == first:
            decoding_first.set()
            second_done.wait(timeout=10)
        if box == second:
            second_done.set()
        return image[box.slices].copy()

    def window(name, box):
        threading.current_thread().name = name
        return blocks.read_blocked("img", box, shape, block, image.dtype, read)

    blocks.cache.clear()
    with ThreadPoolExecutor(2) as pool:
        left = pool.submit(window, "left", Box((0, 0), (8, 9)))
        assert decoding_first.wait(timeout=10)
        right = pool.submit(window, "right", Box((0, 5), (8, 16)))
        np.testing.assert_array_equal(left.result(), image[:, :9])
        np.testing.assert_array_equal(right.result(), image[:, 5:])
    blocks.cache.clear()
    assert (decoded_by[first], decoded_by[second]) == ("left", "right")


def test_a_failed_decode_lets_waiting_threads_decode_themselves():
    shape, block = (16, 16), (16, 8)
    image = np.arange(256, dtype="int32").reshape(shape)
    calls = []
    first = threading.Event()

    def read(box):
        calls.append(box)
        if len(calls) == 1:
            first.set()
            time.sleep(0.05)
            raise OSError("damaged block")
        return image[box.slices].copy()

    def failing():
        return blocks.read_blocked("bad", Box((0, 1), (16, 7)), shape, block, image.dtype, read)

    def waiting():
        first.wait()
        return blocks.read_blocked("bad", Box((0, 2), (16, 6)), shape, block, image.dtype, read)

    blocks.cache.clear()
    with ThreadPoolExecutor(2) as pool:
        failed, waited = pool.submit(failing), pool.submit(waiting)
        np.testing.assert_array_equal(waited.result(timeout=10), image[:, 2:6])
        with pytest.raises(OSError, match="damaged"):
            failed.result()
    blocks.cache.clear()

"""The job queue and pixel conversions."""

from __future__ import annotations

import threading

import numpy as np

from refcolor.service.images import decode_image, decode_mask, encode_rgba, thumbnail
from refcolor.service.worker import JobQueue, QueuedJob
from refcolor_protocol import ColorizeRequest, Header, ImageRef, Layout

REF = ImageRef(1, 1, Layout.RGBA8, 4, 0)


def make_job(job_id: str) -> QueuedJob:
    header = Header(job_id, "colorize_request", "s", "d", "1.0")
    return QueuedJob(ColorizeRequest(sketch=REF, reference=REF), header, (b"id",), (b"\0" * 4,), "classical", 0)


def test_queue_is_fifo_bounded_and_reports_positions() -> None:
    queue = JobQueue(max_waiting=2)
    a, b, c = make_job("a"), make_job("b"), make_job("c")
    assert queue.put(a) == 0 and queue.put(b) == 1
    assert queue.put(c) is None  # full
    assert queue.take() is a and queue.running is a
    assert queue.put(c) == 2  # one running + b ahead
    assert queue.remove("b") is b and queue.remove("b") is None
    queue.done(a)
    assert queue.running is None and queue.take() is c


def test_closing_the_queue_wakes_the_worker_and_returns_the_waiting() -> None:
    queue = JobQueue(max_waiting=4)
    taken: list[object] = []
    worker = threading.Thread(target=lambda: taken.append(queue.take()))
    worker.start()
    worker.join(0.05)
    assert worker.is_alive()  # blocked on an empty queue
    assert queue.close() == []
    worker.join(5)
    assert taken == [None]
    queue2 = JobQueue(max_waiting=4)
    job = make_job("x")
    queue2.put(job)
    assert queue2.close() == [job] and queue2.take() is None


def test_bgra_and_l8_decode_to_rgba() -> None:
    bgra = bytes([10, 20, 30, 40, 1, 2, 3, 4])
    rgba = decode_image(ImageRef(2, 1, Layout.BGRA8, 8, 0), bgra)
    assert rgba.tolist() == [[[30, 20, 10, 40], [3, 2, 1, 4]]]
    gray = decode_image(ImageRef(2, 1, Layout.L8, 2, 0), bytes([7, 9]))
    assert gray.tolist() == [[[7, 7, 7, 255], [9, 9, 9, 255]]]
    mask = decode_mask(ImageRef(1, 2, Layout.L8, 2, 0), bytes([0, 255]))
    assert mask.tolist() == [[0], [255]] and mask.flags.writeable


def test_decoded_images_do_not_alias_the_message_buffer() -> None:
    buffer = bytearray(4)
    image = decode_image(REF, buffer)
    buffer[0] = 99
    assert image[0, 0, 0] == 0


def test_encode_is_zero_copy_and_thumbnail_keeps_aspect() -> None:
    image = np.zeros((30, 60, 4), np.uint8)
    view = encode_rgba(image)
    image[0, 0, 0] = 5
    assert view[0] == 5 and view.nbytes == 30 * 60 * 4
    assert thumbnail(image, 20).shape == (10, 20, 4)
    assert thumbnail(image, 100).shape == (30, 60, 4)

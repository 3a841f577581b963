"""Jobs across processes: concurrent clients, cancel, vanished clients, server restarts."""

from __future__ import annotations

import multiprocessing
import signal
import time

import numpy as np
import pytest
from support import (
    ServerProcess,
    build_request,
    free_tcp_port,
    grid_sketch,
    run_client_job,
    submit_and_vanish,
    wait_for_step,
)

from refcolor_protocol import Cancel, CancelOutcome, Client, ErrorCode, RemoteError
from refcolor_protocol.connection import read_connection_file

pytestmark = pytest.mark.timeout(240)


def slow_request(steps: int = 200) -> tuple[object, list[object]]:
    """A job of the classical model that takes many seconds: k-means over a 1-megapixel reference."""
    reference = np.random.default_rng(0).integers(0, 256, (1024, 1024, 4), dtype=np.uint8)
    return build_request(grid_sketch(256, 256), reference, steps=steps, seed=1)


def test_concurrent_clients_in_separate_processes_get_their_own_results(server_process) -> None:
    info = read_connection_file(server_process.connection_file)
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 100, 50)]
    workers = [spawn.Process(target=run_client_job, args=(info.address, info.key, c, results)) for c in colours]
    for worker in workers:
        worker.start()
    got = dict(results.get(timeout=180) for _ in colours)
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    assert got == {c: [c] for c in colours}


def test_cancel_running_job_stops_within_a_step(server_process) -> None:
    request, buffers = slow_request()
    with server_process.client() as client:
        header = client.send(request, buffers)
        wait_for_step(client, header.msg_id, 2)
        cancel = client.send(Cancel(header.msg_id))
        order: list[str] = []  # message types in arrival order, from the cancel on
        final = None
        deadline = time.monotonic() + 60
        while final is None and time.monotonic() < deadline:
            for msg in client.poll_events():
                if msg.parent_id == cancel.msg_id:
                    assert msg.content.outcome is CancelOutcome.STOPPING
                    order.append("cancel_reply")
                elif msg.parent_id == header.msg_id:
                    order.append(msg.msg_type)
                    if msg.msg_type == "error":
                        final = msg.content
            time.sleep(0.005)
        assert final is not None and final.code == ErrorCode.CANCELLED.value and final.job_id == header.msg_id
        # No step is reported once the cancel has been answered: the job stopped at the step in flight.
        after = order[order.index("cancel_reply") + 1 :]
        assert after == ["error"], order
        status = client.status()
        assert not status.busy and status.queue_length == 0
        request, buffers = build_request(grid_sketch(64, 64), np.full((8, 8, 4), 200, np.uint8), steps=2)
        assert client.colorize(request, buffers, timeout=60).msg_type == "result"


def test_cancel_queued_job_drops_it(server_process) -> None:
    request, buffers = slow_request()
    with server_process.client() as client:
        running = client.send(request, buffers)
        queued = client.send(request, buffers)
        wait_for_step(client, running.msg_id, 1)
        status = client.status()
        assert [(j.job_id, j.phase.value, j.position) for j in status.jobs] == [
            (running.msg_id, "running", 0),
            (queued.msg_id, "queued", 1),
        ]
        assert client.cancel(queued.msg_id).outcome is CancelOutcome.DROPPED
        with pytest.raises(RemoteError) as info:
            client.wait(queued, timeout=30)
        assert info.value.code == ErrorCode.CANCELLED.value
        assert client.status().queue_length == 0
        assert client.cancel("no-such-job").outcome is CancelOutcome.UNKNOWN
        assert client.cancel(running.msg_id).outcome is CancelOutcome.STOPPING
        with pytest.raises(RemoteError):
            client.wait(running, timeout=60)


def test_client_that_disappears_mid_job_gets_its_job_cancelled(server_process) -> None:
    info = read_connection_file(server_process.connection_file)
    spawn = multiprocessing.get_context("spawn")
    vanisher = spawn.Process(target=submit_and_vanish, args=(info.address, info.key))
    vanisher.start()
    vanisher.join(timeout=120)
    assert vanisher.exitcode == 0
    with server_process.client() as client:
        deadline = time.monotonic() + 30
        while client.status().busy:
            assert time.monotonic() < deadline, "the vanished client's job kept running"
            time.sleep(0.1)
        request, buffers = build_request(grid_sketch(64, 64), np.full((8, 8, 4), 90, np.uint8), steps=2)
        assert client.colorize(request, buffers, timeout=60).msg_type == "result"
    assert "cancelled: its client disconnected" in server_process.output()


def test_server_killed_while_client_waits_then_restarted(tmp_path) -> None:
    port = free_tcp_port()
    bind = f"tcp://127.0.0.1:{port}"
    first = ServerProcess.start(tmp_path / "srv", "--model", "classical", bind=bind)
    info = read_connection_file(first.connection_file)
    second = None
    try:
        with Client(info.address, info.key) as client:
            old_id = client.hello().server_id
            request, buffers = slow_request()
            header = client.send(request, buffers)
            wait_for_step(client, header.msg_id, 1)
            first.terminate(signal.SIGKILL)
            started = time.monotonic()
            with pytest.raises(RemoteError) as lost:
                client.wait(header, timeout=30)
            assert lost.value.code == ErrorCode.CONNECTION_LOST.value
            assert "lost the connection" in lost.value.message and time.monotonic() - started < 10
            assert client.waiting == []
            second = ServerProcess.start(tmp_path / "srv", "--model", "classical", bind=bind)
            new_info = read_connection_file(second.connection_file)
            client.reconnect(new_info.key)  # the new server has a new key
            caps = client.hello(timeout=30)
            assert caps.server_id != old_id
            request, buffers = build_request(grid_sketch(64, 64), np.full((8, 8, 4), 90, np.uint8), steps=2)
            assert client.colorize(request, buffers, timeout=60).msg_type == "result"
    finally:
        first.kill()
        if second is not None:
            second.kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_ends_jobs_and_removes_connection_file(tmp_path, sig: int) -> None:
    server = ServerProcess.start(tmp_path / "srv", "--model", "classical")
    try:
        with server.client() as client:
            request, buffers = slow_request()
            running = client.send(request, buffers)
            queued = client.send(request, buffers)
            wait_for_step(client, running.msg_id, 1)
            assert server.terminate(sig) == 0
            for header in (running, queued):
                with pytest.raises(RemoteError) as info:
                    client.wait(header, timeout=30)
                assert info.value.code == ErrorCode.SHUTTING_DOWN.value
        assert not server.connection_file.exists()
    finally:
        server.kill()

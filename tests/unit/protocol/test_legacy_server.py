"""A 1.5 client still talks to a 1.4 server: no transport handshake, HMAC-SHA256 signatures."""

from __future__ import annotations

import threading

import zmq

from refcolor_protocol import Client, ConnectionInfo, Pong, Session

KEY = b"legacy-key"


def serve_pings_like_1_4(router: zmq.Socket, stop: threading.Event) -> None:
    session = Session(KEY, scheme="hmac-sha256")  # a 1.4 server verifies and signs only this
    while not stop.is_set():
        if not router.poll(50, zmq.POLLIN):
            continue
        request = session.deserialize(router.recv_multipart())
        assert request.scheme == "hmac-sha256", request.scheme
        reply = session.msg(Pong(request.content.nonce, "old", 1.0), request.header, identities=request.identities)
        router.send_multipart(session.serialize(reply))


def test_a_client_follows_the_connection_file_of_a_1_4_server() -> None:
    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()
    thread = threading.Thread(target=serve_pings_like_1_4, args=(router, stop), daemon=True)
    thread.start()
    try:
        info = ConnectionInfo(
            f"tcp://127.0.0.1:{port}", KEY, signature_scheme="hmac-sha256", protocol_version="1.4"
        )
        with Client.from_info(info) as client:
            assert not client.transport_auth and client.session.scheme == "hmac-sha256"
            assert client.ping(timeout=5).server_id == "old"
        newer = ConnectionInfo(f"tcp://127.0.0.1:{port}", KEY, protocol_version="1.5")
        with Client.from_info(newer) as client:
            assert client.transport_auth  # a 1.5 file: the handshake is expected
    finally:
        stop.set()
        thread.join(5)
        router.close()

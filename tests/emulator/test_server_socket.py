"""The emulator's listening socket: accepted connections answer without Nagle's delay."""

from __future__ import annotations

import socket

import httpx

from syncd.emulator.server import EmulatorServer
from tests.emulator.support import API_BASE


def test_accepted_connections_have_tcp_nodelay(emulator: EmulatorServer) -> None:
    """With Nagle on, each response waited ~40 ms for the client's delayed ACK (asyncio sets
    TCP_NODELAY only on sockets whose proto says TCP), making every test request 20x slower."""
    with httpx.Client(base_url=f"{emulator.url}{API_BASE}") as client:
        # The connection stays open (keep-alive), so the server still holds its socket.
        assert client.get("/domains", headers={"Training-Key": "k"}).status_code in (200, 401)
        server = emulator._server  # private, but only uvicorn's connections show the option
        assert server is not None
        connections = list(server.server_state.connections)
        assert connections
        for protocol in connections:
            sock = protocol.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0

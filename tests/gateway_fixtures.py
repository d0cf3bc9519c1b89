"""A writer with its link and gateways served by uvicorn on threads (for the gateway tests)."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from api.gateway import create_gateway
from api.link import WriterLink
from tests.test_api_fixtures import free_port


class Served:
    """An ASGI app served on a free port on a thread of its own."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def link_addresses() -> tuple[str, str]:
    return f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"


def start_link(rt: Any) -> tuple[WriterLink, str, str]:
    link, events = link_addresses()
    wl = WriterLink(rt.service, rt.app, link, events,
                    owner=rt.service.store.owner if rt.service.store is not None else "")
    wl.start()
    return wl, link, events


def start_gateway(writers: list[str], events: list[str], timeout_s: float = 5.0) -> Served:
    app, _ = create_gateway(writers, events, timeout_s=timeout_s)
    return Served(app)

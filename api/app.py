"""The FastAPI application: routers, metrics middleware, error mapping."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.fastpath import OrderSendFastPath
from api.routers import admin, mt5, streams
from api.service import EngineService, ServiceStopped


class MeasureRequests:
    """Pure ASGI middleware: request counts and latencies by route (no per-request task or
    body copy, unlike ``@app.middleware("http")``; the labelled series are looked up once
    per method, route and status, not per request)."""

    def __init__(self, app: Any, metrics: Any) -> None:
        self.app = app
        self.metrics = metrics
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            key = (scope["method"], getattr(route, "path", "unmatched"), status[0])
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = (
                    self.metrics.requests.labels(key[0], key[1], str(key[2])),
                    self.metrics.latency.labels(key[1]))
            series[0].inc()
            series[1].observe(time.perf_counter() - t0)


def create_app(service: EngineService, demo: dict | None = None) -> FastAPI:
    """The app around a started :class:`EngineService` (``demo``: the demo credentials).
    The app does not own the service: whoever built it stops it (``Runtime.close``)."""
    app = FastAPI(title="CFD engine: MT5-compatible API", version="0.1.0",
                  description="USDT-margined stock CFDs with MetaTrader 5's request shapes, "
                              "enum numbers, retcodes and result records.")
    app.state.service = service
    app.state.demo = demo
    app.include_router(mt5.router)
    app.include_router(admin.router)
    app.include_router(streams.router)
    metrics = service.metrics

    app.add_middleware(OrderSendFastPath, service=service)  # inside MeasureRequests
    app.add_middleware(MeasureRequests, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # without the offending input: it may be NaN or bytes, which JSON cannot carry
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                   "type": str(e.get("type", ""))} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(ServiceStopped)
    async def engine_stopped(_: Request, exc: ServiceStopped) -> JSONResponse:
        return JSONResponse({"detail": f"{exc}; restart the server to recover"},
                            status_code=503)

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", tags=["ops"])
    async def health() -> dict:
        failed = service.failed
        return {"ok": failed is None, "halted": None if failed is None else str(failed)}

    return app

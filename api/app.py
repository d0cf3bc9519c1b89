"""The FastAPI application: routers, metrics middleware, error mapping."""

from __future__ import annotations

import hmac
import inspect
import os
import time
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.auth import Authenticator, bearer
from api.fastpath import OrderSendFastPath
from api.idempotency import RequestIdReused
from api.limits import EdgeGuard, bounded_errors
from api.routers import admin, corporate, financing, mt5, streams
from api.service import EngineService, Retryable, ServiceStopped
from api.settings import Settings
from api.throttle import AuthRefused, LoginThrottle
from api.web import router as web_router
from cfd.store.errors import StoreBusy


@dataclass
class WsLimits:
    max_connections: int
    max_symbols: int
    queue: int
    open: int = 0


class MeasureRequests:
    """Pure ASGI middleware: request counts and latencies by route (no per-request task or
    body copy, unlike ``@app.middleware("http")``; the labelled series are looked up once
    per method, route and status, not per request)."""

    def __init__(self, app: Any, metrics: Any, unmatched: str = "unmatched") -> None:
        self.app = app
        self.metrics = metrics
        self.unmatched = unmatched  # the route label of a request no route of this app took
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
            key = (scope["method"], getattr(route, "path", self.unmatched), status[0])
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = (
                    self.metrics.requests.labels(key[0], key[1], str(key[2])),
                    self.metrics.latency.labels(key[1]))
            series[0].inc()
            series[1].observe(time.perf_counter() - t0)


async def store_busy(_: Request, exc: Exception) -> JSONResponse:
    """A history read that waited too long for a bulk booking's staged rows: retry."""
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})


def app_options() -> dict[str, Any]:
    """Keyword arguments for every FastAPI app of the project: FastAPI's own OpenTelemetry
    hooks off (the API reports through its Prometheus metrics, ``/metrics``), because
    asking per request whether a provider is configured costs about 4 us of every
    request; ``CFD_OTEL=1`` leaves them to FastAPI's defaults (on when a provider is
    set up). Versions of FastAPI without the hooks get nothing."""
    if os.environ.get("CFD_OTEL") == "1" or \
            "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def create_app(service: EngineService, demo: dict | None = None,
               settings: Settings | None = None) -> FastAPI:
    """The app around a started :class:`EngineService` (``demo``: the demo credentials;
    ``settings``: limits, throttling, CORS, the metrics key; the defaults without).
    The app does not own the service: whoever built it stops it (``Runtime.close``).
    ``/docs`` is served with Swagger UI's assets from the package (no CDN)."""
    st = settings or Settings(demo=True, in_memory=True, _env_file=None)  # type: ignore[call-arg]
    app = FastAPIOffline(title="CFD engine: MT5-compatible API", version="0.1.0",
                         description="USDT-margined stock CFDs with MetaTrader 5's request "
                                     "shapes, enum numbers, retcodes and result records. "
                                     "Authorize with the account number (X-CFD-Login) and "
                                     "its API key (bearer), or an admin key for /admin.",
                         **app_options())
    app.state.service = service
    app.state.demo = demo
    auth = Authenticator(service.keys, LoginThrottle(
        login_failures=st.login_failures, address_failures=st.address_failures,
        base_s=st.lockout_base_s, max_s=st.lockout_max_s, concurrency=st.auth_concurrency,
        queue=st.auth_queue), token_ttl_s=st.ws_token_ttl_s)
    app.state.auth = auth
    app.state.ws_limits = WsLimits(st.ws_max_connections, st.ws_max_symbols, st.ws_queue)
    app.include_router(mt5.router)
    app.include_router(admin.router)
    app.include_router(financing.router)
    app.include_router(corporate.router)
    app.include_router(streams.router)
    app.include_router(web_router)  # the web terminal (/) and back office (/backoffice)
    metrics = service.metrics

    # outermost last: MeasureRequests > CORS > EdgeGuard > OrderSendFastPath > routes
    app.add_middleware(OrderSendFastPath, service=service)
    app.add_middleware(EdgeGuard, auth=auth, max_body=st.max_body_bytes,
                       max_trade_body=st.max_trade_body_bytes, max_depth=st.max_json_depth,
                       max_keys=st.max_json_keys)
    origins = [o.strip() for o in st.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["*"],
                           allow_headers=["Authorization", "X-CFD-Login", "X-Request-Id",
                                          "Content-Type"])
    app.add_middleware(MeasureRequests, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # bounded, and without the offending input (it may be NaN or bytes, or huge)
        return JSONResponse({"detail": bounded_errors(list(exc.errors()))}, status_code=422)

    @app.exception_handler(RequestIdReused)
    async def request_id_reused(_: Request, exc: RequestIdReused) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(Retryable)
    async def retry_later(_: Request, exc: Retryable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503,
                            headers={"Retry-After": "1"})

    app.add_exception_handler(StoreBusy, store_busy)

    @app.exception_handler(ServiceStopped)
    async def engine_stopped(_: Request, exc: ServiceStopped) -> JSONResponse:
        return JSONResponse({"detail": f"{exc}; restart the server to recover"},
                            status_code=503)

    add_metrics_route(app, metrics, auth, st.metrics_key)

    @app.get("/health", tags=["ops"])
    async def health() -> dict:
        failed = service.failed
        return {"ok": failed is None, "halted": None if failed is None else str(failed)}

    return app


def add_metrics_route(app: FastAPI, metrics: Any, auth: Authenticator,
                      metrics_key: str | None) -> None:
    """``GET /metrics``: this process's Prometheus registry (behind the metrics key if
    one is set)."""
    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        if metrics_key:
            await _metrics_caller(request, auth, metrics_key)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _metrics_caller(request: Request, auth: Authenticator, metrics_key: str) -> None:
    """``/metrics`` with a metrics key set: the caller shows it (or an admin key)."""
    header = request.headers.get("authorization")
    key = bearer(header)
    if key is not None and hmac.compare_digest(key.encode(), metrics_key.encode()):
        return
    try:
        await auth.admin(header, request.client.host if request.client else "unknown")
    except AuthRefused as exc:
        raise HTTPException(exc.status, "/metrics needs Authorization: Bearer <metrics key>",
                            headers=exc.headers) from None

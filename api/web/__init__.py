"""The browser front ends: the trader's web terminal (``/``) and the broker's back office
(``/backoffice``), served by the API's own app from files in this package (no CDN, works
offline), authenticated through the same API keys as every other route.

The pages call the MT5 routes (``/v1/...``), the admin routes (``/admin/...``) and the
``/ws/ticks`` stream; this package adds only the reads they need that those routes do not
offer (market state, the constants' names, the back office's account list, exposure and
audit trail) and the back office's actions, which carry a reason journaled with the command.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.web import backoffice, market, pages

router = APIRouter()
router.include_router(pages.router)
router.include_router(market.router)
router.include_router(backoffice.router)

__all__ = ["router"]

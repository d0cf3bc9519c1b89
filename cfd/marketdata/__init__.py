"""Market data: tick and bar history (storage, bar building, recording, import)."""

from cfd.marketdata.bars import RATE_DTYPE, TICK_DTYPE
from cfd.marketdata.store import MarketData

__all__ = ["RATE_DTYPE", "TICK_DTYPE", "MarketData"]

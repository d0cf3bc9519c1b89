"""Price feed: tick batches, price hygiene (bad, outlier and stale ticks) and tick sources.

* :mod:`cfd.feed.ticks` -- :class:`TickBatch`, the columnar tick record and its journal bytes.
* :mod:`cfd.feed.hygiene` -- :class:`PriceHygiene` screens batches; :class:`MarkAggregator`
  takes the median quote of several sources.
* :mod:`cfd.feed.sources` -- :class:`SyntheticFeed`, :class:`ReplayFeed`, :class:`PushSource`.
"""

from cfd.feed.hygiene import HygieneResult, MarkAggregator, PriceHygiene, TickReject
from cfd.feed.sources import PushSource, ReplayFeed, SyntheticFeed, paced
from cfd.feed.ticks import FLAG_QUOTE, TickBatch

__all__ = [
    "FLAG_QUOTE",
    "HygieneResult",
    "MarkAggregator",
    "PriceHygiene",
    "PushSource",
    "ReplayFeed",
    "SyntheticFeed",
    "TickBatch",
    "TickReject",
    "paced",
]

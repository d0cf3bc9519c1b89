"""Orders and deals as MT5 records them, append-only struct-of-arrays."""

from __future__ import annotations

import numpy as np

from cfd.soa import Columns

DEAL_COLUMNS = {
    "ticket": np.int64,
    "order": np.int64,
    "acc": np.int32,
    "sym": np.int32,  # -1 for balance/credit deals
    "time_msc": np.int64,
    "type": np.int8,
    "entry": np.int8,
    "magic": np.int64,
    "position_id": np.int64,
    "reason": np.int8,
    "volume": np.int64,
    "price": np.int64,
    "commission": np.int64,  # minor units (negative: charged)
    "swap": np.int64,
    "profit": np.int64,
    "fee": np.int64,
}

ORDER_COLUMNS = {
    "ticket": np.int64,
    "acc": np.int32,
    "sym": np.int32,
    "time_setup_msc": np.int64,
    "time_done_msc": np.int64,
    "time_expiration": np.int64,
    "type": np.int8,
    "type_time": np.int8,
    "type_filling": np.int8,
    "state": np.int8,
    "magic": np.int64,
    "position_id": np.int64,
    "position_by_id": np.int64,
    "reason": np.int8,
    "volume_initial": np.int64,
    "volume_current": np.int64,
    "price_open": np.int64,
    "sl": np.int64,
    "tp": np.int64,
    "price_current": np.int64,
    "price_stoplimit": np.int64,
}


class RecordLog:
    """Append-only records with a comment per row and a ticket -> row index."""

    def __init__(self, schema: dict, capacity: int = 4096) -> None:
        self.cols = Columns(schema, capacity)
        self.comments: list[str] = []
        self.by_ticket: dict[int, int] = {}

    def __len__(self) -> int:
        return self.cols.size

    def append(self, comment: str = "", **fields: int) -> int:
        c = self.cols
        i = c.append_row()
        d = c.__dict__
        for k, v in fields.items():
            d[k][i] = v
        self.comments.append(comment)
        self.by_ticket[int(fields["ticket"])] = i
        return i

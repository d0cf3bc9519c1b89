"""A real engine under a stream of trades and ticks, for tests/test_store_crash.py.

Usage: ``python tests/store_crash_worker.py URL``. Recovers from the store, then submits
random batches forever, printing ``ACK <seq>`` after each durable commit. The parent kills
it with SIGKILL.
"""

from __future__ import annotations

import random
import sys

from cfd import commands as C
from cfd.store.runner import open_durable

LOGINS = list(range(1001, 1011))


def main(url: str) -> None:
    durable = open_durable(url, snapshot_every=40)
    seq = durable.head_seq
    rng = random.Random(seq)
    if seq == 0:
        first = [C.CreateAccount(time_msc=1 + i, actor="admin", login=login, name=str(login))
                 for i, login in enumerate(LOGINS)]
        first += [C.Deposit(time_msc=100 + i, actor="admin", login=login, amount=5_000_000)
                  for i, login in enumerate(LOGINS)]
        first.append(C.Ticks.of(200, {0: (230.00, 230.02)}))
        durable.submit(first)
        print(f"ACK {durable.head_seq}", flush=True)
    price = 230.0
    while True:
        batch = []
        for _ in range(rng.randint(1, 30)):
            t = 1_000 + 10 * (durable.head_seq + len(batch))
            if rng.random() < 0.3:
                price = round(max(150.0, price + rng.choice((-0.5, -0.1, 0.1, 0.5))), 2)
                batch.append(C.Ticks.of(t, {0: (price, round(price + 0.02, 2))}))
            else:
                login = rng.choice(LOGINS)
                side = rng.choice((0, 1))  # buy at the ask, sell at the bid
                req = {"action": 1, "symbol": "AAPL", "volume": rng.choice((0.1, 0.5, 1.0)),
                       "type": side, "price": round(price + 0.02, 2) if side == 0 else price,
                       "deviation": 1000}
                batch.append(C.SendOrder(time_msc=t, actor=str(login), login=login,
                                         request=req))
        durable.submit(batch)
        print(f"ACK {durable.head_seq}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])

"""``python -m cfd demo``: a short scripted run of the engine that opens, moves and closes
positions and prints the account after each step."""

from __future__ import annotations

import argparse
import sys

from cfd import commands as C
from cfd.engine import Engine


def _show(eng: Engine, login: int, title: str) -> None:
    i = eng.account_info(login)
    print(f"{title:<44} balance {i['balance']:>10,.2f}  equity {i['equity']:>10,.2f}  "
          f"margin {i['margin']:>9,.2f}  free {i['margin_free']:>10,.2f}  "
          f"level {i['margin_level']:>9,.2f}%")


def demo() -> int:
    eng = Engine()
    aapl, nvda = eng.symbols.get("AAPL"), eng.symbols.get("NVDA")
    t = 1_767_000_000_000
    eng.apply(C.CreateAccount(time_msc=t, login=1001, name="Demo trader", actor="demo"))
    eng.apply(C.Deposit(time_msc=t + 1, login=1001, amount=1_000_000, actor="demo"))
    eng.apply(C.Ticks.of(t + 2, {aapl: (230.00, 230.05), nvda: (140.00, 140.02)}))
    _show(eng, 1001, "deposit 10,000.00 USDT")

    def send(dt: int, **req) -> int:
        base = {"action": 1, "deviation": 10, "type_filling": 2}
        r = eng.apply(C.SendOrder(time_msc=t + dt, login=1001, request={**base, **req}))
        res = r.data
        print(f"  order_send {req.get('symbol', '')} type={req['type']} "
              f"volume={req['volume']}: retcode {res.retcode} {res.comment!r} "
              f"price {res.price}")
        return res.order

    long_aapl = send(3, symbol="AAPL", volume=100.0, type=0, price=230.05)
    short_nvda = send(4, symbol="NVDA", volume=50.0, type=1, price=140.00)
    _show(eng, 1001, "long 100 AAPL @ 230.05, short 50 NVDA @ 140")
    eng.apply(C.Ticks.of(t + 5, {aapl: (236.40, 236.45), nvda: (137.10, 137.12)}))
    _show(eng, 1001, "AAPL 236.40/236.45, NVDA 137.10/137.12")
    send(6, symbol="AAPL", volume=40.0, type=1, price=236.40, position=long_aapl)
    _show(eng, 1001, "partial close 40 AAPL @ 236.40")
    eng.apply(C.Ticks.of(t + 7, {aapl: (180.00, 180.05), nvda: (175.00, 175.05)}))
    _show(eng, 1001, "market gaps: AAPL 180, NVDA 175")
    send(8, symbol="NVDA", volume=50.0, type=0, price=175.05, position=short_nvda)
    send(9, symbol="AAPL", volume=60.0, type=1, price=180.00, position=long_aapl)
    _show(eng, 1001, "all closed")
    print(f"ledger sum over all accounts: {eng.ledger_total()} (always 0)")
    print(f"state hash: {eng.state_hash()[:16]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cfd")
    parser.add_argument("command", choices=["demo"], help="demo: a scripted engine run")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo()
    return 1


if __name__ == "__main__":
    sys.exit(main())

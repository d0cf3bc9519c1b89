"""Shared test helpers: a small engine with accounts and quotes, one-line trade calls."""

from __future__ import annotations

from cfd import commands as C
from cfd.engine import Engine, Result

T0 = 1_767_000_000_000


class Book:
    """An engine plus a clock: every call is one command, one millisecond later."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.eng = engine or Engine()
        self.t = T0

    def tick(self) -> int:
        self.t += 1
        return self.t

    def apply(self, cmd_type: type[C.Command], **kw) -> Result:
        return self.eng.apply(cmd_type(time_msc=self.tick(), **kw))

    def account(self, login: int, deposit_cents: int = 0, group: str = "demo\\usdt",
                leverage: int = 1) -> int:
        r = self.apply(C.CreateAccount, login=login, name=f"acc{login}", group=group,
                       leverage=leverage)
        assert r.ok, r
        if deposit_cents:
            r = self.apply(C.Deposit, login=login, amount=deposit_cents)
            assert r.ok, r
        return login

    def quote(self, **quotes: tuple[float, float]) -> Result:
        q = {self.eng.symbols.get(name): (float(b), float(a)) for name, (b, a) in quotes.items()}
        return self.eng.apply(C.Ticks.of(self.tick(), q))

    def send(self, login: int, **request) -> Result:
        req = {"action": 1, "deviation": 1000, "type_filling": 2, **request}
        if req.get("action") == 1 and "price" not in request and req.get("symbol"):
            s = self.eng.symbols.get(req["symbol"])
            sc = self.eng.symbols.cols
            if s is not None and sc.has_quote[s]:
                req["price"] = (sc.ask[s] if req.get("type", 0) == 0 else sc.bid[s]) / 1e6
        return self.apply(C.SendOrder, login=login, request=req)

    def buy(self, login: int, symbol: str, volume: float, **kw) -> Result:
        return self.send(login, symbol=symbol, volume=volume, type=0, **kw)

    def sell(self, login: int, symbol: str, volume: float, **kw) -> Result:
        return self.send(login, symbol=symbol, volume=volume, type=1, **kw)

    def info(self, login: int) -> dict:
        return self.eng.account_info(login)

    def last_deal(self) -> dict:
        return self.eng.deal_row(len(self.eng.deals) - 1)

    @classmethod
    def two_accounts(cls) -> Book:
        """Hedging 1001 and netting 2002 with 10,000.00 USDT each; AAPL and NVDA quoted."""
        b = cls()
        b.account(1001, 1_000_000)
        b.account(2002, 1_000_000, group="demo\\netting")
        b.quote(AAPL=(230.00, 230.10), NVDA=(140.00, 140.02))
        return b

    def positions(self, login: int) -> list[dict]:
        a = self.eng.accounts.find(login)
        rows = [self.eng.position_row(int(p)) for p in self.eng.positions.of_account(a)]
        return sorted(rows, key=lambda r: r["ticket"])


def record_journal(eng: Engine) -> list[C.Command]:
    """From now on, every command applied to ``eng`` is appended to the returned list (the
    journal a replay needs)."""
    journal: list[C.Command] = []
    apply = eng.apply

    def record(cmd: C.Command) -> Result:
        journal.append(cmd)
        return apply(cmd)

    eng.apply = record  # type: ignore[method-assign]
    return journal

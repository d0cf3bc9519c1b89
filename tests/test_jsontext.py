"""JSON text from orjson only where it is the standard library's: a journaled command's
payload bytes (and so the journal's hash chain) are those of ``json`` whatever its values."""

from __future__ import annotations

import json
from dataclasses import asdict

from hypothesis import given, settings
from hypothesis import strategies as st

from cfd import commands as C
from cfd.jsontext import fast_text

_SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)


def _json(cmd: C.Command) -> bytes:
    return json.dumps(asdict(cmd), separators=(",", ":"), sort_keys=True).encode()


@settings(max_examples=300, deadline=None)
@given(request=st.dictionaries(st.text(max_size=8), _VALUES, max_size=8),
       comment=st.text(max_size=20), login=st.integers(-2**63, 2**63 - 1))
def test_a_payload_is_jsons_bytes(request: dict, comment: str, login: int) -> None:
    cmd = C.SendOrder(time_msc=1_700_000_000_123, login=login, request=request)
    assert cmd.to_payload() == _json(cmd)
    named = C.CreateAccount(time_msc=5, login=login, name=comment)
    assert named.to_payload() == _json(named)


def test_a_plain_order_takes_the_fast_path() -> None:
    cmd = C.SendOrder(time_msc=1, login=1001, request={
        "action": 1, "symbol": "AAPL", "volume": 1.0, "type": 0, "price": 230.05,
        "deviation": 20, "type_filling": 2})
    assert fast_text(asdict(cmd), sort_keys=True) == cmd.to_payload() == _json(cmd)
    for odd in (float("nan"), 1e-05, "naïve", None):  # json's text, not orjson's
        c = C.SendOrder(time_msc=1, login=1, request={"price": odd})
        assert fast_text(asdict(c), sort_keys=True) is None
        assert c.to_payload() == _json(c)


def test_every_ascii_character_is_written_as_json_writes_it() -> None:
    """DEL (0x7f) is the one ASCII character json escapes and orjson does not."""
    for code in range(0x80):
        cmd = C.SendOrder(time_msc=1, login=1, request={"comment": f"a{chr(code)}b"})
        assert cmd.to_payload() == _json(cmd), hex(code)


def test_a_stamped_command_is_the_replaced_one() -> None:
    """``Command.stamped`` (the service's time stamp) gives what ``dataclasses.replace``
    gives, for every command class: equal, same payload, the original untouched."""
    from dataclasses import fields, replace

    def subclasses(cls: type) -> list[type]:
        out = []
        for sub in cls.__subclasses__():
            out += [sub, *subclasses(sub)]
        return out

    classes = [c for c in subclasses(C.Command) if c.kind]
    assert len(classes) > 10
    for cls in classes:
        if any(f.name == "login" for f in fields(cls)):
            cmd = cls(time_msc=0, actor="admin", login=1001)
        else:
            cmd = cls(time_msc=0, actor="admin")
        got = cmd.stamped(1_700_000_000_123)
        want = replace(cmd, time_msc=1_700_000_000_123)
        assert type(got) is cls and got == want and vars(got) == vars(want)
        assert cmd.time_msc == 0

"""The shared state of flow control: who holds a slot, who waits, what a window holds.

One function's state is one JSON object, changed by one operation at a time
(:func:`apply`): in a process's memory on the embedded backend, in the dev
server's memory, and in one row of ``resonate_web.flow`` on Postgres, locked
for the operation. Every gateway and worker sharing a backend sees the same
state, so a limit holds across all of them. Times are the backend's
(:func:`apply` is handed ``now``): the database's clock on Postgres, the dev
server's on the dev server, so processes whose clocks disagree still agree on
windows and leases.

The state of a function::

    {"w": {id: waiter}, "h": {id: {"l": lane, "u": until}},
     "t": {lane: {"p": period, "s": [[at, id], ...]}},
     "d": {lane: {"i": id, "a": args, "k": kwargs, "u": due, "p": period}},
     "k": {id: {"a": args, "k": kwargs, "at": at}}}

A waiter is ``{"i": id, "p": priority, "o": order, "n": needs, "c": lane,
"r": lane, "f": waiting_for, "x": expires}``. Waiters are served highest
priority first, then in the order their invocations were created (``o``, the
backend's creation time), then by id: one total order, the same in every lane,
so the waiter first in line for a slot is also first in line for a window.
Nothing here imports the SDK or awaits: it is pure state, tested as such.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FlowBook", "apply"]

#: A waiter nobody asked about for this many leases is gone (its process died):
#: it leaves the line, and takes its place back when its invocation runs again.
_STALE_LEASES = 3
#: Arguments of a debounced invocation that began, kept for its retries (ms).
_TAKEN_KEEP_MS = 7 * 24 * 3600 * 1000
#: A debounce that nobody took this long after it was due names an invocation that
#: never ran (its start failed): the next start opens a new one (ms, at least).
_DEBOUNCE_GRACE_MS = 60_000

State = dict[str, Any]


def _table(state: State, key: str) -> dict[str, Any]:
    table = state.get(key)
    if not isinstance(table, dict):
        table = state[key] = {}
    return table


def _expire(state: State, now: int) -> None:
    holding = _table(state, "h")
    for id in [i for i, h in holding.items() if h["u"] < now]:
        del holding[id]
    waiting = _table(state, "w")
    for id in [i for i, w in waiting.items() if w["x"] < now]:
        del waiting[id]
    tokens = _table(state, "t")
    for lane in list(tokens):
        window = tokens[lane]
        window["s"] = [s for s in window["s"] if s[0] > now - window["p"]]
        if not window["s"]:
            del tokens[lane]
    taken = _table(state, "k")
    for id in [i for i, k in taken.items() if k["at"] < now - _TAKEN_KEEP_MS]:
        del taken[id]


def _rank(waiter: dict[str, Any]) -> tuple[int, int, str]:
    return (-int(waiter["p"]), int(waiter["o"]), str(waiter["i"]))


def _ahead(waiting: dict[str, Any], me: dict[str, Any], need: str, lane: str) -> bool:
    """Whether a waiter before ``me`` in line needs ``need`` in ``lane`` too."""
    mine = _rank(me)
    return any(
        w is not me and need in w["n"] and w[need] == lane and _rank(w) < mine
        for w in waiting.values()
    )


def _enter(state: State, req: dict[str, Any], now: int) -> dict[str, Any]:
    id: str = req["id"]
    lease = int(req["lease"])
    conc: Any = req.get("c")
    rate: Any = req.get("r")
    holding = _table(state, "h")
    waiting = _table(state, "w")
    window: list[list[Any]] = []
    if rate is not None:
        tokens = _table(state, "t")
        window = tokens.setdefault(rate["lane"], {"p": int(rate["period"]), "s": []})["s"]
    has_token = rate is None or any(s[1] == id for s in window)
    holds = conc is None or id in holding
    if has_token and holds:
        if conc is not None:
            holding[id]["u"] = now + lease
        waiting.pop(id, None)
        return {"granted": True}
    me = waiting.setdefault(id, {"i": id, "o": int(req.get("order", now))})
    me.update(
        p=int(req.get("priority", 0)),
        n=[n for n, missing in (("c", not holds), ("r", not has_token)) if missing],
        c=conc["lane"] if conc else None,
        r=rate["lane"] if rate else None,
        x=now + _STALE_LEASES * lease,
    )
    reason: str | None = None
    retry_ms: int | None = None
    if not holds:
        held = sum(1 for h in holding.values() if h["l"] == conc["lane"])
        if held >= int(conc["limit"]) or _ahead(waiting, me, "c", conc["lane"]):
            reason = "concurrency"
    if reason is None and not has_token:
        if len(window) >= int(rate["limit"]):
            reason = "rate"
            retry_ms = max(int(window[0][0]) + int(rate["period"]) - now, 1)
        elif _ahead(waiting, me, "r", rate["lane"]):
            reason = "rate"
    if reason is not None:
        me["f"] = reason
        return {"granted": False, "waiting_for": reason, "retry_ms": retry_ms}
    if not holds:
        holding[id] = {"l": conc["lane"], "u": now + lease}
    if not has_token:
        window.append([now, id])
    del waiting[id]
    return {"granted": True}


def _queue(state: State, req: dict[str, Any], now: int) -> dict[str, Any]:
    """Take a place in line for invocation ``id`` once it is created, so it keeps its
    turn while it is on its way to a worker (its first ``enter`` finds it there)."""
    id: str = req["id"]
    waiting = _table(state, "w")
    if id in waiting or id in _table(state, "h"):
        return {"queued": False}
    conc: Any = req.get("c")
    rate: Any = req.get("r")
    waiting[id] = {
        "i": id,
        "o": int(req.get("order", now)),
        "p": int(req.get("priority", 0)),
        "n": [n for n, given in (("c", conc), ("r", rate)) if given],
        "c": conc["lane"] if conc else None,
        "r": rate["lane"] if rate else None,
        "x": now + _STALE_LEASES * int(req["lease"]),
        "f": "concurrency" if conc else "rate",
    }
    return {"queued": True}


def _renew(state: State, req: dict[str, Any], now: int) -> dict[str, Any]:
    held = _table(state, "h").get(req["id"])
    if held is None:
        return {"held": False}
    held["u"] = now + int(req["lease"])
    return {"held": True}


def _leave(state: State, req: dict[str, Any], now: int) -> dict[str, Any]:
    id = req["id"]
    _table(state, "h").pop(id, None)
    _table(state, "w").pop(id, None)
    if req.get("done"):
        _table(state, "k").pop(id, None)
    return {}


def _admit(state: State, req: dict[str, Any], now: int) -> dict[str, Any]:
    """A start refused when its window is full (``on_limit="reject"``)."""
    id = req["id"]
    period = int(req["period"])
    window = _table(state, "t").setdefault(req["lane"], {"p": period, "s": []})["s"]
    if any(s[1] == id for s in window):
        return {"granted": True}
    if len(window) >= int(req["limit"]):
        return {"granted": False, "retry_ms": max(int(window[0][0]) + period - now, 1)}
    window.append([now, id])
    return {"granted": True}


def _debounce(state: State, req: dict[str, Any], now: int) -> dict[str, Any]:
    lanes = _table(state, "d")
    period = int(req["period"])
    open_ = lanes.get(req["lane"])
    if open_ is not None and now <= open_["u"] + max(open_["p"], _DEBOUNCE_GRACE_MS):
        open_.update(a=req["args"], k=req["kwargs"], u=now + period, p=period)
        return {"id": open_["i"], "new": False}
    lanes[req["lane"]] = {
        "i": req["id"],
        "a": req["args"],
        "k": req["kwargs"],
        "u": now + period,
        "p": period,
    }
    return {"id": req["id"], "new": True}


def _forget(state: State, req: dict[str, Any], now: int) -> dict[str, Any]:
    """Close the quiet period invocation ``id`` opened (in ``lane``, or any)."""
    lanes = _table(state, "d")
    for lane in [lane for lane, d in lanes.items() if d["i"] == req["id"]]:
        if not req.get("lane") or lane == req["lane"]:
            del lanes[lane]
    return {}


def _take(state: State, req: dict[str, Any], now: int) -> dict[str, Any]:
    """The arguments a debounced invocation runs with, once its quiet period is over."""
    id = req["id"]
    lanes = _table(state, "d")
    for lane, open_ in lanes.items():
        if open_["i"] == id:
            if now < open_["u"]:
                return {"wait_ms": open_["u"] - now}
            del lanes[lane]
            _table(state, "k")[id] = {"a": open_["a"], "k": open_["k"], "at": now}
            return {"args": open_["a"], "kwargs": open_["k"]}
    taken = _table(state, "k").get(id)
    if taken is not None:
        return {"args": taken["a"], "kwargs": taken["k"]}
    return {}


def _waiting(state: State, req: dict[str, Any], now: int) -> dict[str, Any]:
    """What each waiting invocation waits for (``ids``: only those), in line order."""
    waiting = _table(state, "w")
    wanted = req.get("ids")
    ids = set(wanted) if isinstance(wanted, list) else None
    inline = sorted(waiting.values(), key=_rank)
    debouncing = [
        {"id": d["i"], "waiting_for": "debounce"}
        for d in _table(state, "d").values()
        if ids is None or d["i"] in ids
    ]
    return {
        "waiting": [
            {"id": w["i"], "waiting_for": w.get("f", "concurrency")}
            for w in inline
            if ids is None or w["i"] in ids
        ]
        + debouncing,
        "running": len(_table(state, "h")),
    }


_OPS = {
    "enter": _enter,
    "queue": _queue,
    "renew": _renew,
    "leave": _leave,
    "admit": _admit,
    "debounce": _debounce,
    "forget": _forget,
    "take": _take,
    "waiting": _waiting,
}


def apply(state: State, req: dict[str, Any], now: int) -> dict[str, Any]:
    """Apply one flow request to one function's ``state`` (changed in place)."""
    op = _OPS.get(str(req.get("op")))
    if op is None:
        raise ValueError(f"unknown flow operation {req.get('op')!r}")
    _expire(state, now)
    return op(state, req, now)


class FlowBook:
    """Every function's flow state, in memory (the embedded backend, the dev server)."""

    def __init__(self) -> None:
        self.states: dict[str, State] = {}

    def apply(self, req: dict[str, Any], now: int) -> dict[str, Any]:
        fns = req.get("fns")
        if isinstance(fns, list):  # a read across functions
            return {str(fn): apply(self.states.setdefault(str(fn), {}), req, now) for fn in fns}
        return apply(self.states.setdefault(str(req["fn"]), {}), req, now)

"""Fault injection: a share of requests answered with 5xx, 429, a dropped connection, or delayed.

A spec reads like `5xx=0.1,429=0.05,drop=0.02,latency=20ms` (`latency` also takes `s`; shares
are between 0 and 1). `lock=0.02` makes that share of Salesforce record updates fail with
UNABLE_TO_LOCK_ROW, the per-record error a connector must retry. The draw is made per request
from a seeded generator, so a run with the same seed and the same request order meets the same
faults.

A `RequestFault` fails exactly the requests it matches (method, path, and a piece of the JSON
body), for tests that need one call of a sequence to fail: the set after a HubSpot lifecycle
clear, say. Rules stay until used up (`times`) or cleared.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass, replace
from enum import Enum


class FaultSpecError(ValueError):
    """A fault spec that cannot be parsed; the message names the bad part."""


class Fault(Enum):
    SERVER_ERROR = "5xx"
    RATE_LIMITED = "429"
    DROP = "drop"
    MATCHED = "matched"  # a RequestFault's


@dataclass(frozen=True, slots=True)
class FaultSpec:
    server_error: float = 0.0
    rate_limited: float = 0.0
    drop: float = 0.0
    latency_seconds: float = 0.0
    record_lock: float = 0.0

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        spec = cls()
        for part in filter(None, (chunk.strip() for chunk in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                raise FaultSpecError(f"fault {part!r} needs a value, e.g. 5xx=0.1")
            key = key.strip().lower()
            value = value.strip()
            if key == "latency":
                spec = replace(spec, latency_seconds=_parse_duration(value))
                continue
            attribute = _SHARES.get(key)
            if attribute is None:
                raise FaultSpecError(f"unknown fault {key!r}; known: 5xx, 429, drop, lock, latency")
            spec = replace(spec, **{attribute: _parse_share(key, value)})
        if spec.server_error + spec.rate_limited + spec.drop > 1:
            raise FaultSpecError("fault shares add up to more than 1")
        return spec

    def as_dict(self) -> dict[str, float]:
        return {
            "5xx": self.server_error,
            "429": self.rate_limited,
            "drop": self.drop,
            "lock": self.record_lock,
            "latency_ms": round(self.latency_seconds * 1000, 3),
        }

    @property
    def active(self) -> bool:
        return bool(
            self.server_error
            or self.rate_limited
            or self.drop
            or self.latency_seconds
            or self.record_lock
        )


_SHARES = {"5xx": "server_error", "429": "rate_limited", "drop": "drop", "lock": "record_lock"}


def _parse_share(key: str, value: str) -> float:
    try:
        share = float(value)
    except ValueError:
        raise FaultSpecError(f"fault {key}={value!r}: not a number") from None
    if not 0 <= share <= 1:
        raise FaultSpecError(f"fault {key}={value}: a share between 0 and 1")
    return share


def _parse_duration(value: str) -> float:
    number, scale = value, 1.0
    if value.endswith("ms"):
        number, scale = value[:-2], 0.001
    elif value.endswith("s"):
        number = value[:-1]
    try:
        seconds = float(number) * scale
    except ValueError:
        raise FaultSpecError(f"latency={value!r}: use e.g. 50ms or 0.2s") from None
    if seconds < 0:
        raise FaultSpecError(f"latency={value}: cannot be negative")
    return seconds


@dataclass(slots=True)
class RequestFault:
    """Answer `status` to requests with this method and path whose body, as compact JSON
    (`{"a":"b"}`, whatever spacing the client sent), contains `body_contains`; `times` of
    them, or every one until cleared when None."""

    method: str
    path: str
    status: int = 503
    body_contains: str | None = None
    times: int | None = None

    def matches(self, method: str, path: str, body: bytes) -> bool:
        if method.upper() != self.method.upper() or path != self.path:
            return False
        return self.body_contains is None or self.body_contains in _compact(body)


def _compact(body: bytes) -> str:
    try:
        return json.dumps(json.loads(body or b"null"), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        return body.decode("utf-8", errors="replace")


class FaultInjector:
    """Decides, request by request, whether to inject a fault."""

    def __init__(self, spec: FaultSpec | None = None, *, seed: int = 0) -> None:
        self._spec = spec or FaultSpec()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._rules: list[RequestFault] = []

    def fail_requests(self, rule: RequestFault) -> None:
        """Fail the requests `rule` matches, from now on."""
        with self._lock:
            self._rules.append(rule)

    def clear_request_faults(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def request_faults(self) -> list[RequestFault]:
        with self._lock:
            return list(self._rules)

    def matched(self, method: str, path: str, body: bytes) -> int | None:
        """The status to answer when a RequestFault matches this request (one of its `times`
        used up), else None."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path, body):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self._rules.remove(rule)
                    return rule.status
        return None

    @property
    def spec(self) -> FaultSpec:
        return self._spec

    def configure(self, spec: FaultSpec, *, seed: int | None = None) -> None:
        with self._lock:
            self._spec = spec
            if seed is not None:
                self._random = random.Random(seed)

    def draw(self) -> Fault | None:
        spec = self._spec
        if not (spec.server_error or spec.rate_limited or spec.drop):
            return None
        with self._lock:
            roll = self._random.random()
        if roll < spec.server_error:
            return Fault.SERVER_ERROR
        roll -= spec.server_error
        if roll < spec.rate_limited:
            return Fault.RATE_LIMITED
        roll -= spec.rate_limited
        if roll < spec.drop:
            return Fault.DROP
        return None

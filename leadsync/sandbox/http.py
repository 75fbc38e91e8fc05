"""Plain request and response values and a routing table for the sandbox's emulators.

The emulators are written against these values, not against the HTTP server, so each CRM is a
table of routes and handler functions that tests can read and the server can dispatch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

JSON_TYPE = "application/json;charset=UTF-8"


class NonStandardNumberError(ValueError):
    """A body holding `NaN` or `Infinity`: Python's json reads them, but neither CRM's JSON
    parser (Jackson, whose ALLOW_NON_NUMERIC_NUMBERS is off by default) takes them, and
    `requests` writes them for a float nan or inf."""

    def __init__(self, token: str) -> None:
        super().__init__(
            f"Non-standard token '{token}': enable JsonParser.Feature.ALLOW_NON_NUMERIC_NUMBERS "
            "to allow"
        )


def _non_standard(token: str) -> Any:
    raise NonStandardNumberError(token)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # keys lower-cased
    body: bytes = b""

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def params(self, name: str) -> list[str]:
        return list(self.query.get(name, ()))

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        """The body decoded as JSON; `ValueError` when it is not JSON (NaN and Infinity
        included: `NonStandardNumberError`)."""
        return json.loads(self.body.decode("utf-8") or "null", parse_constant=_non_standard)

    def form(self) -> dict[str, str]:
        """The body as `application/x-www-form-urlencoded` fields, last value wins."""
        parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {key: values[-1] for key, values in parsed.items()}


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        # Half a UTF-16 pair a CRM holds goes out as JSON's escape ("\ud800"), as a Java
        # backend's JSON writer sends it: UTF-8 has no bytes for it.
        body = text.encode("utf-8", "backslashreplace")
        return cls(status, body, JSON_TYPE, dict(headers or {}))

    @classmethod
    def text(
        cls, status: int, text: str, content_type: str = "text/plain;charset=UTF-8"
    ) -> Response:
        return cls(status, text.encode("utf-8"), content_type)

    @classmethod
    def empty(cls, status: int = 204) -> Response:
        return cls(status, b"", "")


Handler = Callable[[Request, re.Match[str]], Response]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: a method, a path pattern (a regex matched whole) and its handler.

    `endpoint` is a stable label for statistics, e.g. "hubspot.contacts.batch_update".
    """

    method: str
    pattern: re.Pattern[str]
    endpoint: str
    handler: Handler


def route(method: str, pattern: str, endpoint: str, handler: Handler) -> Route:
    return Route(method, re.compile(pattern), endpoint, handler)


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    groups: re.Match[str]


class Router:
    """Finds the route for a request; tells "no such path" from "method not allowed"."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = list(routes)

    def find(self, method: str, path: str) -> Match | str | None:
        """The matching route, None for an unknown path, or "method" if only the verb is wrong."""
        path_known = False
        for candidate in self._routes:
            found = candidate.pattern.fullmatch(path)
            if found is None:
                continue
            if candidate.method == method:
                return Match(candidate, found)
            path_known = True
        return "method" if path_known else None

"""A local HTTP server that speaks enough of Notion's API (version 2025-09-03) to test the Notion backend.

Usable from pytest and from plain scripts (benchmarks)::

    with NotionServer(token="secret") as server:
        database_id, data_source_id = server.add_database("Accounts", ACCOUNTS_SCHEMA)
        server.add_page(data_source_id, account_properties(record))
        ...  # point notion-client at server.base_url

In-memory databases, data sources, pages and blocks; databases.retrieve, data_sources.retrieve/query (with
page_size <= 100, has_more, next_cursor and simple `equals` filters), pages.create/update and
blocks.children.append/list. Requests are validated like Notion does (unknown properties, wrong property
types, more than 100 children, rich text over 2,000 characters → 400 `validation_error`). Optional sliding-window
rate limit (429 `rate_limited` with Retry-After), injectable faults (5xx, 401, 404 ...) and a request log.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

NOTION_VERSION = "2025-09-03"
MAX_PAGE_SIZE = 100
MAX_CHILDREN = 100
MAX_TEXT = 2000
READ_ONLY_TYPES = {"formula", "rollup", "created_time", "last_edited_time", "unique_id"}


@dataclass(frozen=True)
class LoggedRequest:
    """One request the server received."""

    method: str
    path: str
    at: float
    status: int
    body: dict[str, Any] | None


@dataclass
class Fault:
    """An error to answer instead of the real response, `times` times, for matching requests."""

    status: int
    code: str
    message: str
    times: int = 1
    method: str | None = None
    path_contains: str | None = None
    after_apply: bool = False
    retry_after: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_contains is None or self.path_contains in path
        )


@dataclass
class RateLimit:
    """At most `requests` within any `window_s` seconds; more get 429 with `Retry-After: retry_after_s`."""

    requests: int
    window_s: float = 1.0
    retry_after_s: int = 1


@dataclass
class _DataSource:
    id: str
    database_id: str
    name: str
    schema: dict[str, str]
    page_ids: list[str] = field(default_factory=list)


class NotionError(Exception):
    """An error response: status, Notion error code, message and an optional Retry-After value."""

    def __init__(self, status: int, code: str, message: str, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


class NotionServer:
    """The server and its in-memory workspace; start with `start()` or `with NotionServer() as server`."""

    def __init__(self, *, token: str = "secret_test_token", rate_limit: RateLimit | None = None) -> None:
        self.token = token
        self.rate_limit = rate_limit
        self.databases: dict[str, dict[str, Any]] = {}
        self.data_sources: dict[str, _DataSource] = {}
        self.pages: dict[str, dict[str, Any]] = {}
        self.blocks: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[LoggedRequest] = []
        self.faults: list[Fault] = []
        self.loop_cursor = False
        """When set, every query says there is more and hands out the same cursor again (a misbehaving server)."""
        self._accepted: list[float] = []
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The URL to give notion-client as `base_url`."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> NotionServer:
        """Listen on a free loopback port in a background thread."""
        handler = type("Handler", (_Handler,), {"notion": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="notion-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> NotionServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- workspace set-up and inspection -----------------------------------------------------------------------

    def add_database(self, title: str, schema: Mapping[str, str]) -> tuple[str, str]:
        """A database with one data source whose properties are `{name: type}`; returns (database id, ds id)."""
        database_id, data_source_id = str(uuid.uuid4()), str(uuid.uuid4())
        with self._lock:
            self.databases[database_id] = {"title": title, "data_sources": [data_source_id]}
            self.data_sources[data_source_id] = _DataSource(data_source_id, database_id, title, dict(schema))
        return database_id, data_source_id

    def add_page(self, data_source_id: str, properties: Mapping[str, Any], *, page_id: str | None = None) -> str:
        """Add a page given its properties in response format (see the `p_*` helpers); missing ones are empty."""
        source = self.data_sources[data_source_id]
        page_id = page_id or str(uuid.uuid4())
        full = {name: _empty_value(kind) for name, kind in source.schema.items()}
        full.update({name: dict(value) for name, value in properties.items()})
        with self._lock:
            self.pages[page_id] = _page_object(page_id, source, full)
            source.page_ids.append(page_id)
            self.blocks[page_id] = []
        return page_id

    def pages_in(self, data_source_id: str) -> list[dict[str, Any]]:
        """The pages of a data source, in creation order."""
        with self._lock:
            return [self.pages[page_id] for page_id in self.data_sources[data_source_id].page_ids]

    def requests_to(self, method: str, pattern: str) -> list[LoggedRequest]:
        """Logged requests with this method whose path matches the regular expression."""
        with self._lock:
            return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    def fail(self, status: int, code: str | None = None, **options: Any) -> Fault:
        """Answer the next matching request(s) with an error (see `Fault`)."""
        code = code or _DEFAULT_CODES.get(status, "internal_server_error")
        fault = Fault(status=status, code=code, message=options.pop("message", f"Injected {status} {code}"), **options)
        with self._lock:
            self.faults.append(fault)
        return fault

    # -- request handling ------------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: dict[str, Any] | None, *, arrived: float
    ) -> Any:
        """Answer one request that arrived at monotonic time `arrived` (raises NotionError for error responses)."""
        if headers.get("authorization") != f"Bearer {self.token}":
            raise NotionError(401, "unauthorized", "API token is invalid.")
        if headers.get("notion-version") != NOTION_VERSION:
            raise NotionError(400, "missing_version", "Notion-Version header failed validation.")
        self._check_rate(arrived)
        fault = self._take_fault(method, path)
        if fault is not None and not fault.after_apply:
            raise _fault_error(fault)
        result = self._route(method, path, body or {})
        if fault is not None:
            raise _fault_error(fault)
        return result

    def _check_rate(self, arrived: float) -> None:
        limit = self.rate_limit
        if limit is None:
            return
        with self._lock:
            recent = [at for at in self._accepted[-limit.requests :] if arrived - at < limit.window_s]
            if len(recent) >= limit.requests:
                message = "You have been rate limited. Please try again in a few minutes."
                raise NotionError(429, "rate_limited", message, retry_after=str(limit.retry_after_s))
            self._accepted.append(arrived)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.matches(method, path):
                    fault.times -= 1
                    return fault
        return None

    def _route(self, method: str, path: str, body: dict[str, Any]) -> Any:
        parts = path.strip("/").split("/")
        if parts[0] != "v1":
            raise NotionError(400, "invalid_request_url", "Invalid request URL.")
        route = (method, *parts[1:])
        with self._lock:
            match route:
                case ("GET", "databases", database_id):
                    return self._database(database_id)
                case ("GET", "data_sources", data_source_id):
                    return self._data_source_object(self._source(data_source_id))
                case ("POST", "data_sources", data_source_id, "query"):
                    return self._query(self._source(data_source_id), body)
                case ("POST", "pages"):
                    return self._create_page(body)
                case ("PATCH", "pages", page_id):
                    return self._update_page(self._page(page_id), body)
                case ("PATCH", "blocks", block_id, "children"):
                    return self._append(self._page(block_id)["id"], body)
                case ("GET", "pages", page_id, "properties", property_id):
                    return self._property_items(self._page(page_id), property_id, body)
                case ("GET", "blocks", block_id, "children"):
                    return {"object": "list", "results": self.blocks[self._page(block_id)["id"]], "has_more": False}
        raise NotionError(400, "invalid_request_url", f"Invalid request URL: {method} {path}")

    def _database(self, database_id: str) -> dict[str, Any]:
        database = self.databases.get(database_id)
        if database is None:
            raise _not_found("database", database_id)
        return {
            "object": "database",
            "id": database_id,
            "title": _rich_text(database["title"]),
            "data_sources": [{"id": ds, "name": self.data_sources[ds].name} for ds in database["data_sources"]],
        }

    def _source(self, data_source_id: str) -> _DataSource:
        source = self.data_sources.get(data_source_id)
        if source is None:
            raise _not_found("data source", data_source_id)
        return source

    def _page(self, page_id: str) -> dict[str, Any]:
        page = self.pages.get(page_id)
        if page is None:
            raise _not_found("page", page_id)
        return page

    def _data_source_object(self, source: _DataSource) -> dict[str, Any]:
        properties = {
            name: {"id": _property_id(name), "name": name, "type": kind, kind: {}}
            for name, kind in source.schema.items()
        }
        return {
            "object": "data_source",
            "id": source.id,
            "parent": {"type": "database_id", "database_id": source.database_id},
            "title": _rich_text(source.name),
            "properties": properties,
        }

    def _query(self, source: _DataSource, body: dict[str, Any]) -> dict[str, Any]:
        page_size = body.get("page_size", MAX_PAGE_SIZE)
        if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise _invalid(f"body.page_size should be ≤ `{MAX_PAGE_SIZE}`, instead was `{page_size}`.")
        pages = [self.pages[page_id] for page_id in source.page_ids if not self.pages[page_id]["in_trash"]]
        if body.get("filter"):
            pages = [page for page in pages if _matches(page, body["filter"], source)]
        if self.loop_cursor:
            results = [_truncated(page) for page in pages[:page_size]]
            return {"object": "list", "results": results, "has_more": True, "next_cursor": "loop-cursor"}
        start = 0
        if body.get("start_cursor"):
            ids = [page["id"] for page in pages]
            if body["start_cursor"] not in ids:
                raise _invalid(f"start_cursor {body['start_cursor']!r} is not valid.")
            start = ids.index(body["start_cursor"])
        chunk = [_truncated(page) for page in pages[start : start + page_size]]
        more = start + page_size < len(pages)
        return {
            "object": "list",
            "type": "page_or_data_source",
            "results": chunk,
            "has_more": more,
            "next_cursor": pages[start + page_size]["id"] if more else None,
        }

    def _property_items(self, page: dict[str, Any], property_id: str, query: dict[str, Any]) -> dict[str, Any]:
        """The property items endpoint for a relation, RELATION_LIMIT items per request."""
        found = [value for value in page["properties"].values() if value.get("id") == property_id]
        if not found:
            raise _not_found("property", property_id)
        related = found[0].get("relation") or []
        start = int(query.get("start_cursor") or 0)
        chunk = related[start : start + RELATION_LIMIT]
        more = start + RELATION_LIMIT < len(related)
        return {
            "object": "list",
            "type": "property_item",
            "results": [
                {"object": "property_item", "id": property_id, "type": "relation", "relation": r} for r in chunk
            ],
            "has_more": more,
            "next_cursor": str(start + RELATION_LIMIT) if more else None,
        }

    def _create_page(self, body: dict[str, Any]) -> dict[str, Any]:
        parent = body.get("parent") or {}
        source_id = parent.get("data_source_id")
        if source_id is None and parent.get("database_id") in self.databases:
            source_id = self.databases[parent["database_id"]]["data_sources"][0]
        if source_id is None:
            raise _invalid("body.parent.data_source_id should be defined.")
        source = self._source(source_id)
        children = body.get("children") or []
        _check_children(children, "body.children")
        values = _written_properties(body.get("properties") or {}, source.schema)
        page_id = self.add_page(source.id, values)
        self.blocks[page_id] = [_block_object(child) for child in children]
        return self.pages[page_id]

    def _update_page(self, page: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        source = self.data_sources[page["parent"]["data_source_id"]]
        page["properties"].update(_with_ids(_written_properties(body.get("properties") or {}, source.schema)))
        page["last_edited_time"] = _now_iso()
        return page

    def _append(self, page_id: str, body: dict[str, Any]) -> dict[str, Any]:
        children = body.get("children")
        if not isinstance(children, list) or not children:
            raise _invalid("body.children should be a non-empty array.")
        _check_children(children, "body.children")
        added = [_block_object(child) for child in children]
        self.blocks[page_id].extend(added)
        return {"object": "list", "results": added, "has_more": False, "next_cursor": None}


_DEFAULT_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "restricted_resource",
    404: "object_not_found",
    409: "conflict_error",
    500: "internal_server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


class _Handler(BaseHTTPRequestHandler):
    notion: NotionServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # keep-alive requests would otherwise wait ~40 ms for a delayed ACK

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def _serve(self, method: str) -> None:
        arrived = time.monotonic()
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        headers = {key.lower(): value for key, value in self.headers.items()}
        extra: dict[str, str] = {}
        body: dict[str, Any] | None = None
        try:
            body = json.loads(raw) if raw else None
            if method == "GET" and "?" in self.path:  # query parameters (start_cursor, page_size) of a GET
                body = {key: values[0] for key, values in parse_qs(self.path.split("?", 1)[1]).items()}
            status, payload = 200, self.notion.handle(method, path, headers, body, arrived=arrived)
        except json.JSONDecodeError:
            status, payload = 400, _error_body(400, "invalid_json", "Error parsing JSON body.")
        except NotionError as error:
            status, payload = error.status, _error_body(error.status, error.code, error.message)
            if error.status == 200:  # an injected 200 whose body is not JSON (a proxy's page)
                payload = _NotJSON(error.message)
            if error.retry_after is not None:
                extra["Retry-After"] = error.retry_after
        with self.notion._lock:
            self.notion.requests.append(LoggedRequest(method, path, arrived, status, body))
        data = payload.encode() if isinstance(payload, _NotJSON) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if isinstance(payload, _NotJSON) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


class _NotJSON(str):
    """A response body sent as it is, not as JSON."""


def _error_body(status: int, code: str, message: str) -> dict[str, Any]:
    return {"object": "error", "status": status, "code": code, "message": message, "request_id": str(uuid.uuid4())}


def _fault_error(fault: Fault) -> NotionError:
    return NotionError(fault.status, fault.code, fault.message, retry_after=fault.retry_after)


def _not_found(kind: str, object_id: str) -> NotionError:
    return NotionError(
        404,
        "object_not_found",
        f"Could not find {kind} with ID: {object_id}. Make sure the relevant pages and databases are shared "
        "with your integration.",
    )


def _invalid(message: str) -> NotionError:
    return NotionError(400, "validation_error", message)


def _now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


RELATION_LIMIT = 25
"""Notion returns at most 25 related pages in a page object (`has_more: true` past that)."""


def _truncated(page: dict[str, Any]) -> dict[str, Any]:
    """The page as Notion returns it: relations longer than RELATION_LIMIT cut, with `has_more`."""
    properties = {
        name: {**value, "relation": value["relation"][:RELATION_LIMIT], "has_more": True}
        if value.get("type") == "relation" and len(value.get("relation") or []) > RELATION_LIMIT
        else value
        for name, value in page["properties"].items()
    }
    return {**page, "properties": properties}


def _property_id(name: str) -> str:
    return "title" if name == "Name" else uuid.uuid5(uuid.NAMESPACE_OID, name).hex[:4]


def _page_object(page_id: str, source: _DataSource, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "page",
        "id": page_id,
        "created_time": _now_iso(),
        "last_edited_time": _now_iso(),
        "archived": False,
        "in_trash": False,
        "parent": {"type": "data_source_id", "data_source_id": source.id, "database_id": source.database_id},
        "properties": _with_ids(properties),
        "url": f"https://www.notion.so/{page_id.replace('-', '')}",
    }


def _with_ids(properties: Mapping[str, Any]) -> dict[str, Any]:
    return {name: {"id": _property_id(name), **value} for name, value in properties.items()}


# -- request validation: written property values → stored (response-format) values ---------------------------


def _written_properties(properties: Mapping[str, Any], schema: Mapping[str, str]) -> dict[str, Any]:
    stored: dict[str, Any] = {}
    for name, value in properties.items():
        kind = schema.get(name)
        if kind is None:
            raise _invalid(f"{name} is not a property that exists.")
        if kind in READ_ONLY_TYPES:
            raise _invalid(f"{name} is a {kind} property and cannot be written.")
        if not isinstance(value, dict) or kind not in value:
            raise _invalid(f"{name} is expected to be {kind}.")
        stored[name] = {"type": kind, kind: _stored_value(name, kind, value[kind])}
    return stored


def _stored_value(name: str, kind: str, value: Any) -> Any:
    path = f"body.properties.{name}.{kind}"
    if kind in ("title", "rich_text"):
        return _checked_rich_text(value, path)
    if kind in ("select", "status"):
        return None if value is None else _option(value["name"])
    if kind == "multi_select":
        return [_option(option["name"]) for option in value]
    if kind == "number" and value is not None and not isinstance(value, int | float):
        raise _invalid(f"{path} should be a number or `null`, instead was `{json.dumps(value)}`.")
    if kind == "date" and value is not None:
        _parse_date(value["start"], path)
        return {"start": value["start"], "end": value.get("end"), "time_zone": None}
    if kind == "relation":
        return [{"id": item["id"]} for item in value]
    return value


def _parse_date(text: str, path: str) -> None:
    try:
        date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        raise _invalid(f"{path}.start should be a valid ISO 8601 date string, instead was `{text}`.") from None


def _checked_rich_text(items: Sequence[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    if len(items) > MAX_CHILDREN:
        raise _invalid(f"{path}.length should be ≤ `{MAX_CHILDREN}`, instead was `{len(items)}`.")
    checked = []
    for index, item in enumerate(items):
        content = item.get("text", {}).get("content", "")
        if len(content) > MAX_TEXT:
            raise _invalid(
                f"body failed validation: {path}[{index}].text.content.length should be ≤ `{MAX_TEXT}`, "
                f"instead was `{len(content)}`."
            )
        checked.append(_text_item(content))
    return checked


def _check_children(children: Sequence[dict[str, Any]], path: str) -> None:
    if len(children) > MAX_CHILDREN:
        raise _invalid(
            f"body failed validation: {path}.length should be ≤ `{MAX_CHILDREN}`, instead was `{len(children)}`."
        )
    for index, child in enumerate(children):
        kind = child.get("type")
        if not kind or kind not in child:
            raise _invalid(f"body failed validation: {path}[{index}].type should be defined.")
        _checked_rich_text(child[kind].get("rich_text", []), f"{path}[{index}].{kind}.rich_text")


def _block_object(child: dict[str, Any]) -> dict[str, Any]:
    kind = child["type"]
    content = {**child[kind], "rich_text": [_text_item(i["text"]["content"]) for i in child[kind].get("rich_text", [])]}
    return {"object": "block", "id": str(uuid.uuid4()), "type": kind, kind: content, "has_children": False}


def _matches(page: dict[str, Any], condition: dict[str, Any], source: _DataSource) -> bool:
    if "or" in condition:
        return any(_matches(page, part, source) for part in condition["or"])
    if "and" in condition:
        return all(_matches(page, part, source) for part in condition["and"])
    name = condition.get("property")
    if name not in source.schema:
        raise _invalid(f"Could not find property with name or id: {name}")
    kind = next((key for key in condition if key != "property"), "")
    if "equals" not in condition.get(kind, {}):
        raise _invalid(f"This test server supports only `equals` filters, got {json.dumps(condition)}.")
    return bool(_plain(page["properties"][name]) == condition[kind]["equals"])


def _plain(value: dict[str, Any]) -> Any:
    kind = value["type"]
    inner = value[kind]
    if kind in ("title", "rich_text"):
        return "".join(item["plain_text"] for item in inner)
    if kind in ("select", "status"):
        return None if inner is None else inner["name"]
    return inner


# -- response-format property values (for seeding pages) -------------------------------------------------------


def _text_item(content: str) -> dict[str, Any]:
    return {
        "type": "text",
        "text": {"content": content, "link": None},
        "annotations": {"bold": False, "italic": False, "code": False, "color": "default"},
        "plain_text": content,
        "href": None,
    }


def _rich_text(content: str) -> list[dict[str, Any]]:
    return [_text_item(content)] if content else []


def _option(name: str) -> dict[str, Any]:
    if "," in name:
        raise _invalid(f"Select option names cannot contain commas, got `{name}`.")
    return {"id": uuid.uuid5(uuid.NAMESPACE_OID, name).hex[:4], "name": name, "color": "default"}


def _empty_value(kind: str) -> dict[str, Any]:
    empty: dict[str, Any] = {"title": [], "rich_text": [], "multi_select": [], "people": [], "relation": []}
    if kind == "checkbox":
        return {"type": kind, kind: False}
    if kind == "formula":
        return {"type": kind, kind: {"type": "string", "string": None}}
    if kind == "rollup":
        return {"type": kind, kind: {"type": "array", "array": [], "function": "show_original"}}
    return {"type": kind, kind: empty.get(kind)}


def p_title(text: str) -> dict[str, Any]:
    """A title value."""
    return {"type": "title", "title": _rich_text(text)}


def p_text(text: str) -> dict[str, Any]:
    """A rich_text value."""
    return {"type": "rich_text", "rich_text": _rich_text(text)}


def p_number(value: float | None) -> dict[str, Any]:
    """A number value."""
    return {"type": "number", "number": value}


def p_select(name: str | None) -> dict[str, Any]:
    """A select value."""
    return {"type": "select", "select": None if name is None else _option(name)}


def p_status(name: str) -> dict[str, Any]:
    """A status value."""
    return {"type": "status", "status": _option(name)}


def p_multi(names: Sequence[str]) -> dict[str, Any]:
    """A multi_select value."""
    return {"type": "multi_select", "multi_select": [_option(name) for name in names]}


def p_date(start: str | None) -> dict[str, Any]:
    """A date value (ISO date or datetime)."""
    return {"type": "date", "date": None if start is None else {"start": start, "end": None, "time_zone": None}}


def p_email(address: str | None) -> dict[str, Any]:
    """An email value."""
    return {"type": "email", "email": address}


def p_people(emails: Sequence[str]) -> dict[str, Any]:
    """A people value (users with these emails)."""
    users = [
        {"object": "user", "id": str(uuid.uuid5(uuid.NAMESPACE_OID, e)), "type": "person", "person": {"email": e}}
        for e in emails
    ]
    return {"type": "people", "people": users}


def p_checkbox(checked: bool) -> dict[str, Any]:
    """A checkbox value."""
    return {"type": "checkbox", "checkbox": checked}


def p_relation(page_ids: Sequence[str]) -> dict[str, Any]:
    """A relation value (related page ids)."""
    return {"type": "relation", "relation": [{"id": page_id} for page_id in page_ids], "has_more": False}


def p_formula(value: str | float | bool | None) -> dict[str, Any]:
    """A formula value of the type of `value` (str, number, bool; a str like 2026-01-31 is a date)."""
    if isinstance(value, bool):
        return {"type": "formula", "formula": {"type": "boolean", "boolean": value}}
    if isinstance(value, int | float):
        return {"type": "formula", "formula": {"type": "number", "number": value}}
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", value):
        return {"type": "formula", "formula": {"type": "date", "date": {"start": value, "end": None}}}
    return {"type": "formula", "formula": {"type": "string", "string": value}}


def p_rollup(value: float | Sequence[dict[str, Any]] | str) -> dict[str, Any]:
    """A rollup value: a number, an ISO date string, or an array of property values."""
    if isinstance(value, int | float):
        return {"type": "rollup", "rollup": {"type": "number", "number": value, "function": "sum"}}
    if isinstance(value, str):
        return {"type": "rollup", "rollup": {"type": "date", "date": {"start": value, "end": None}, "function": "max"}}
    return {"type": "rollup", "rollup": {"type": "array", "array": list(value), "function": "show_original"}}


ACCOUNTS_SCHEMA: dict[str, str] = {
    "Name": "title",
    "Account ID": "rich_text",
    "ARR": "number",
    "Plan": "select",
    "Status": "status",
    "Rep Email": "email",
    "AE Email": "people",
    "Chat Space": "rich_text",
    "Contract End Date": "date",
    "Feature Adoption Rate": "number",
    "Usage Trend": "select",
    "Login Frequency Days": "number",
    "Days Since Last Interaction": "number",
    "Stakeholder Engagement": "select",
    "NPS Score": "number",
    "Invoice Payment Status": "select",
    "Seats Utilization Rate": "number",
    "Open Ticket Count": "number",
    "Avg Ticket Sentiment": "select",
    "Escalation Count 90 Days": "number",
    "Health Status": "select",
    "Collections Risk": "select",
    "Features Available": "multi_select",
    "Feature Usage": "rich_text",
    "Usage History": "rich_text",
    "Seats Purchased": "number",
    "Seats Active": "number",
    "Notes": "rich_text",
    "CSM Health Score": "number",
    "CSM Health RAG": "select",
    "CSM Last Scan": "date",
}
"""A typical accounts database (one property per account field) plus the agent's write-back properties."""

QBR_SCHEMA: dict[str, str] = {
    "Name": "title",
    "Account": "relation",
    "Account ID": "rich_text",
    "Period": "select",
    "Trigger": "select",
    "Health RAG": "select",
    "Health Score": "number",
    "Date": "date",
    "CSM Key": "rich_text",
}
"""A QBR database."""

EXPANSION_SCHEMA: dict[str, str] = {
    "Name": "title",
    "Account": "relation",
    "Account ID": "rich_text",
    "Opportunity Type": "select",
    "Confidence": "select",
    "Estimated ARR Impact": "number",
    "Evidence": "rich_text",
    "Talk Track": "rich_text",
    "Date": "date",
    "CSM Key": "rich_text",
}
"""An expansion opportunities database."""


def account_properties(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ACCOUNTS_SCHEMA page properties of a sample-book style account record (for seeding a server)."""
    usage = record.get("feature_usage") or {}

    def number(key: str) -> dict[str, Any]:
        return p_number(record.get(key))

    def select(key: str) -> dict[str, Any]:
        return p_select(record.get(key))

    return {
        "Name": p_title(str(record["name"])),
        "Account ID": p_text(str(record["account_id"])),
        "ARR": number("arr"),
        "Plan": select("plan"),
        "Status": p_status(str(record.get("status") or "active").title()),
        "Rep Email": p_email(record.get("rep_email")),
        "AE Email": p_people([record["ae_email"]] if record.get("ae_email") else []),
        "Chat Space": p_text(str(record.get("chat_space") or "")),
        "Contract End Date": p_date(record.get("contract_end_date")),
        "Feature Adoption Rate": number("feature_adoption_rate"),
        "Usage Trend": select("usage_trend"),
        "Login Frequency Days": number("login_frequency_days"),
        "Days Since Last Interaction": number("days_since_last_interaction"),
        "Stakeholder Engagement": select("stakeholder_engagement"),
        "NPS Score": number("nps_score"),
        "Invoice Payment Status": select("invoice_payment_status"),
        "Seats Utilization Rate": number("seats_utilization_rate"),
        "Open Ticket Count": number("open_ticket_count"),
        "Avg Ticket Sentiment": select("avg_ticket_sentiment"),
        "Escalation Count 90 Days": number("escalation_count_90_days"),
        "Health Status": select("tam_health_rag"),
        "Collections Risk": select("collections_risk"),
        "Features Available": p_multi(record.get("features_available") or []),
        "Feature Usage": p_text(", ".join(f"{name}: {count}" for name, count in usage.items())),
        "Usage History": p_text(", ".join(str(n) for n in record.get("usage_history") or [])),
        "Seats Purchased": number("seats_purchased"),
        "Seats Active": number("seats_active"),
        "Notes": p_text(str(record.get("notes") or "")[:MAX_TEXT]),
    }


def seed_accounts(
    server: NotionServer, records: Sequence[Mapping[str, Any]], *, schema: Mapping[str, str] = ACCOUNTS_SCHEMA
) -> tuple[str, str]:
    """An accounts database holding one page per record; returns (database id, data source id)."""
    database_id, data_source_id = server.add_database("Accounts", schema)
    for record in records:
        server.add_page(data_source_id, {k: v for k, v in account_properties(record).items() if k in schema})
    return database_id, data_source_id


def iter_blocks_text(blocks: Sequence[dict[str, Any]]) -> Iterator[str]:
    """The plain text of each block, in order."""
    for block in blocks:
        yield "".join(item["plain_text"] for item in block[block["type"]].get("rich_text", []))

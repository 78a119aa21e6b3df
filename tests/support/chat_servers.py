"""Local servers that answer like Slack (Web API `chat.postMessage` + an incoming webhook) and a Google Chat
space webhook, with a request log, arrival times and queued faults (429 with Retry-After, error bodies).

    with SlackServer() as slack:
        ...  # AsyncWebClient(base_url=slack.api_base, token=slack.token) / AsyncWebhookClient(slack.webhook_url)
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response


@dataclass(frozen=True)
class Post:
    """One request that reached an endpoint: where, when (monotonic), the JSON payload and the query."""

    path: str
    at: float
    payload: dict[str, Any]
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Fault:
    """An error answered instead of the real response (once) for requests whose path contains `path_contains`."""

    status: int
    body: str
    path_contains: str = ""
    retry_after: str | None = None
    content_type: str = "application/json"


class _RecordingServer:
    """A threaded server on 127.0.0.1 that logs every request and answers queued faults first."""

    def __init__(self) -> None:
        self._server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self._server.expect_request(re.compile(".*")).respond_with_handler(self._dispatch)
        self._lock = threading.Lock()
        self.reset()

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._server.clear()
        self._server.stop()

    def reset(self) -> None:
        """Forget requests, posts and faults."""
        self.requests: list[Post] = []
        self.faults: list[Fault] = []

    def url(self, path: str) -> str:
        """The absolute URL of `path` on this server."""
        return self._server.url_for(path)

    def _dispatch(self, request: Request) -> Response:
        data = request.get_data()
        payload = json.loads(data) if data and request.mimetype == "application/json" else {}
        post = Post(request.path, time.monotonic(), payload, request.args.to_dict(), dict(request.headers))
        with self._lock:
            self.requests.append(post)
            fault = next((f for f in self.faults if f.path_contains in request.path), None)
            if fault is not None:
                self.faults.remove(fault)
                response = Response(fault.body, fault.status, content_type=fault.content_type)
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = fault.retry_after
                return response
            return self.handle(post)

    def handle(self, post: Post) -> Response:
        """Answer one request that no fault matched."""
        raise NotImplementedError


class SlackServer(_RecordingServer):
    """Slack's `chat.postMessage` (JSON body, Bearer token) and one incoming webhook."""

    token = "xoxb-local-test-token-0000"
    webhook_path = "/services/T0000/B0000/local-webhook-secret"

    def reset(self) -> None:
        """Forget everything; known channels are #cs-alerts and #cs-smb."""
        super().reset()
        self.channels = {"#cs-alerts": "C0ALERTS", "#cs-smb": "C0SMB"}
        self.messages: list[Post] = []
        self.webhook_messages: list[Post] = []
        self._ts = itertools.count(1)

    @property
    def api_base(self) -> str:
        """`base_url` for AsyncWebClient."""
        return self.url("/api/")

    @property
    def webhook_url(self) -> str:
        """The incoming webhook's URL (its path is the secret)."""
        return self.url(self.webhook_path)

    def handle(self, post: Post) -> Response:
        if post.path == "/api/chat.postMessage":
            return self._post_message(post)
        if post.path == self.webhook_path:
            self.webhook_messages.append(post)
            return Response("ok", 200, content_type="text/html")
        if post.path.startswith("/services/"):
            return Response("no_service", 404, content_type="text/html")
        return _slack_error("unknown_method", 404)

    def _post_message(self, post: Post) -> Response:
        if post.headers.get("Authorization") != f"Bearer {self.token}":
            return _slack_error("invalid_auth")
        channel_id = self.channels.get(post.payload.get("channel", ""))
        if channel_id is None:
            return _slack_error("channel_not_found")
        self.messages.append(post)
        ts = f"1764000000.{next(self._ts):06d}"
        body = {"ok": True, "channel": channel_id, "ts": ts, "message": {"text": post.payload["text"], "ts": ts}}
        return Response(json.dumps(body), 200, content_type="application/json")


class GoogleChatServer(_RecordingServer):
    """A Google Chat space's incoming webhook: `POST /v1/spaces/{space}/messages?key=..&token=..`."""

    space = "AAAA-local"
    key = "local-webhook-key"
    secret_token = "local-webhook-token-secret"

    def reset(self) -> None:
        """Forget every message and thread."""
        super().reset()
        self.messages: list[Post] = []
        self.threads: dict[str, str] = {}
        self._ids = itertools.count(1)

    @property
    def webhook_url(self) -> str:
        """The webhook URL as Google Chat shows it (key and token in the query)."""
        return self.url(f"/v1/spaces/{self.space}/messages?key={self.key}&token={self.secret_token}")

    def handle(self, post: Post) -> Response:
        if post.path != f"/v1/spaces/{self.space}/messages":
            return _google_error(404, "NOT_FOUND", "Requested entity was not found.")
        if post.query.get("key") != self.key or post.query.get("token") != self.secret_token:
            return _google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        if not isinstance(post.payload.get("text"), str):
            return _google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Missing 'text'.")
        self.messages.append(post)
        number = next(self._ids)
        thread_key = (post.payload.get("thread") or {}).get("threadKey")
        if thread_key is not None and post.query.get("messageReplyOption"):
            thread = self.threads.setdefault(thread_key, f"spaces/{self.space}/threads/T{number}")
        else:
            thread = f"spaces/{self.space}/threads/T{number}"
        body = {
            "name": f"spaces/{self.space}/messages/M{number}",
            "text": post.payload["text"],
            "thread": {"name": thread},
            "space": {"name": f"spaces/{self.space}"},
        }
        return Response(json.dumps(body), 200, content_type="application/json")

    def thread_of(self, message: Post) -> str | None:
        """The thread a recorded message landed in (by its thread key)."""
        thread_key = (message.payload.get("thread") or {}).get("threadKey")
        return self.threads.get(thread_key) if thread_key else None


def slack_error_body(error: str) -> str:
    """A Slack Web API error body."""
    return json.dumps({"ok": False, "error": error})


def google_error_body(code: int, status: str, message: str) -> str:
    """A Google API error body."""
    return json.dumps({"error": {"code": code, "message": message, "status": status}})


def _slack_error(error: str, status: int = 200) -> Response:
    return Response(slack_error_body(error), status, content_type="application/json")


def _google_error(code: int, status: str, message: str) -> Response:
    return Response(google_error_body(code, status, message), code, content_type="application/json")

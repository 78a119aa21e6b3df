"""A local server that answers like Gmail's `users.drafts.create` and Google's OAuth 2.0 token endpoint.

    with GmailServer() as server:
        ...  # point the client at server.api_root and the credentials' token_uri at server.token_uri

Every request is logged. Any attempt at a delivering endpoint (messages.send / import / insert, drafts.send) is
answered 404 and recorded in `delivery_attempts`, so a test can prove none was ever made. Queue `faults` to
answer drafts.create with an error first (429 with Retry-After, 5xx, 403 ...).
"""

from __future__ import annotations

import base64
import email
import itertools
import json
import re
import threading
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage as ParsedEmail
from types import TracebackType
from typing import Any

from google.auth import jwt
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

ACCESS_TOKEN = "ya29.local-test-access-token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_DRAFTS = re.compile(r"^/gmail/v1/users/(?P<user>[^/]+)/drafts$")
_DELIVERING = re.compile(r"/messages(/send|/import)?$|/drafts/send$")


@dataclass(frozen=True)
class LoggedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Draft:
    """A draft Gmail stored: the mailbox, the request body and the decoded MIME message."""

    user_id: str
    body: dict[str, Any]
    mime: ParsedEmail
    raw: bytes


@dataclass
class Fault:
    """An error answered to drafts.create instead of creating the draft (once)."""

    status: int
    message: str = "error"
    reason: str = "backendError"
    retry_after: str | None = None


class GmailServer:
    """Gmail drafts + token endpoint on 127.0.0.1 with a request log; `reset()` between tests."""

    def __init__(self, *, public_key_pem: bytes | None = None) -> None:
        self.public_key_pem = public_key_pem
        self._server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self._server.expect_request(re.compile(".*")).respond_with_handler(self._handle)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget every request, draft, fault and scope override."""
        self.granted_scope: str | None = None
        self.faults: list[Fault] = []
        self.requests: list[LoggedRequest] = []
        self.delivery_attempts: list[LoggedRequest] = []
        self.token_requests: list[dict[str, str]] = []
        self.jwt_claims: list[dict[str, Any]] = []
        self.drafts: list[Draft] = []
        self._ids = itertools.count(1)

    def __enter__(self) -> GmailServer:
        self._server.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._server.clear()
        self._server.stop()

    @property
    def api_root(self) -> str:
        """What to give the client as `api_endpoint` (paths below it are `gmail/v1/...`)."""
        return self._server.url_for("/")

    @property
    def token_uri(self) -> str:
        """The OAuth 2.0 token endpoint."""
        return self._server.url_for("/token")

    def _handle(self, request: Request) -> Response:
        logged = LoggedRequest(request.method, request.path, dict(request.headers), request.get_data())
        with self._lock:
            self.requests.append(logged)
            if _DELIVERING.search(request.path):
                self.delivery_attempts.append(logged)
                return _error(404, "Not found (this local Gmail never delivers mail)", "notFound")
            if request.method == "POST" and request.path == "/token":
                return self._token(request)
            match = _DRAFTS.match(request.path)
            if request.method == "POST" and match:
                return self._create_draft(request, match["user"])
        return _error(404, f"unknown endpoint {request.method} {request.path}", "notFound")

    def _token(self, request: Request) -> Response:
        form = request.form.to_dict()
        self.token_requests.append(form)
        scope = form.get("scope", "")
        if form.get("grant_type") == JWT_BEARER:
            claims = jwt.decode(form["assertion"], certs=self.public_key_pem, verify=self.public_key_pem is not None)
            self.jwt_claims.append(claims)
            scope = str(claims.get("scope", ""))
        elif form.get("grant_type") != "refresh_token":
            return Response(json.dumps({"error": "unsupported_grant_type"}), 400, content_type="application/json")
        body = {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}
        body["scope"] = self.granted_scope if self.granted_scope is not None else scope
        return Response(json.dumps(body), 200, content_type="application/json")

    def _create_draft(self, request: Request, user_id: str) -> Response:
        if request.headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
            return _error(401, "Request had invalid authentication credentials.", "authError")
        if self.faults:
            fault = self.faults.pop(0)
            response = _error(fault.status, fault.message, fault.reason)
            if fault.retry_after is not None:
                response.headers["Retry-After"] = fault.retry_after
            return response
        body = json.loads(request.get_data())
        raw = base64.urlsafe_b64decode(body["message"]["raw"])
        mime = email.message_from_bytes(raw, policy=policy.default)
        assert isinstance(mime, ParsedEmail)
        self.drafts.append(Draft(user_id=user_id, body=body, mime=mime, raw=raw))
        number = next(self._ids)
        message = {"id": f"m{number}", "threadId": body["message"].get("threadId", f"t{number}"), "labelIds": ["DRAFT"]}
        return Response(json.dumps({"id": f"r{number}", "message": message}), 200, content_type="application/json")


def _error(status: int, message: str, reason: str) -> Response:
    body = {"error": {"code": status, "message": message, "errors": [{"message": message, "reason": reason}]}}
    return Response(json.dumps(body), status, content_type="application/json")

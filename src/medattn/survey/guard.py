"""The survey's outermost ASGI layer: security headers on every response, a body limit, credentials before bodies.

A pure ASGI middleware (Starlette's recommended form; ``BaseHTTPMiddleware`` would wrap streaming
bodies) that, for every HTTP request:

* adds :data:`medattn.survey.security.SECURITY_HEADERS` to the response start message, whatever
  produced it (a page, a refusal, a static file, Starlette's 404/405);
* refuses a POST without a Content-Length (411) or with one above ``max_body`` (413) before a byte
  of the body is read (uvicorn then enforces the declared length);
* for a POST under ``/r/<token>/``, looks the token up first (in a worker thread) and answers 404
  without reading the body when it is unknown or revoked; a POST under ``/admin/`` other than the
  login needs a live admin session cookie the same way (401);
* logs method, path (token redacted) and status.

Unhandled errors (500) are answered by the app's exception handler, which sets the same headers;
Starlette's ``ServerErrorMiddleware`` sits outside this layer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from http.cookies import SimpleCookie

from anyio import to_thread
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medattn.survey.security import SECURITY_HEADERS

log = logging.getLogger("medattn.survey")
RATER_POST = re.compile(r"^/r/([^/]+)/")


def redacted_path(path: str) -> str:
    """Return a request path with any token replaced by '***' (safe to log)."""
    return re.sub(r"/r/[^/]+", "/r/***", path)


class Guard:
    """ASGI middleware; ``rater_ok(token)`` and ``admin_ok(cookie)`` are blocking checks run in a thread."""

    def __init__(self, app: ASGIApp, *, max_body: int, rater_ok: Callable[[str], bool],
                 admin_ok: Callable[[str], bool], admin_cookie: str) -> None:
        self.app, self.max_body = app, max_body
        self.rater_ok, self.admin_ok, self.admin_cookie = rater_ok, admin_ok, admin_cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(SECURITY_HEADERS)
                status["code"] = message["status"]
            await send(message)

        refusal = await self._refusal(scope) if scope["method"] == "POST" else None
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
        else:
            await self.app(scope, receive, send_with_headers)
        log.info("%s %s %s", scope["method"], redacted_path(scope["path"]), status.get("code"))

    async def _refusal(self, scope: Scope) -> PlainTextResponse | None:
        """Return the response refusing a POST before its body is read, None to let it through."""
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is None or not length.isascii() or not length.isdigit():
            return PlainTextResponse("A form must be sent with its length.", status_code=411)
        if int(length) > self.max_body:
            return PlainTextResponse(f"The form is larger than {self.max_body} bytes.", status_code=413)
        path = scope["path"]
        rater = RATER_POST.match(path)
        if rater and not await to_thread.run_sync(self.rater_ok, rater.group(1)):
            return PlainTextResponse("This link is not valid.", status_code=404)
        if path.startswith("/admin/") and path != "/admin/login":
            cookie = SimpleCookie(headers.get("cookie", "")).get(self.admin_cookie)
            if cookie is None or not await to_thread.run_sync(self.admin_ok, cookie.value):
                return PlainTextResponse("Log in at /admin first.", status_code=401)
        return None

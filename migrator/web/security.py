"""Who may use the panel: every request carries the token (Authorization: Bearer, or the cookie set by the one-time
`?token=` link printed at start), and every action carries a CSRF token derived from it and comes from this origin."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlencode, urlsplit

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

COOKIE = "migrator_token"
HEADERS = {
    # The page loads nothing from elsewhere and runs only its own script; no other site may frame it.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # same-origin: an action's Origin names this server (no-referrer would make it "null"); the ?token= URL is
    # never a page, only a redirect, so no Referer carries the token.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def new_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(token: str) -> str:
    """The CSRF value of every form: bound to the panel's token, so another site can neither read nor forge it."""
    return hmac.new(token.encode(), b"migrator-web-csrf", hashlib.sha256).hexdigest()


def same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def same_origin(request: Request) -> bool:
    """An action's Origin (or Referer) names this server, when the browser sends one."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return f"{parts.scheme}://{parts.netloc}" == f"{request.url.scheme}://{request.url.netloc}"


class TokenAuth(BaseHTTPMiddleware):
    """401 without the token; `?token=` sets the cookie and redirects to the same page without it."""

    def __init__(self, app: object, token: str) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        given = request.query_params.get("token")
        if given is not None and same(given, self.token):
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            response: Response = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), status_code=303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", path="/")
        elif same(bearer(request), self.token) or same(request.cookies.get(COOKIE), self.token):
            response = await call_next(request)
        else:
            response = PlainTextResponse(
                "401: this panel needs its token: open the link `migrator web` printed at start (…/?token=…), "
                "or send Authorization: Bearer $MIGRATOR_WEB_TOKEN\n", status_code=401)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

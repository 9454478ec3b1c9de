"""What keeps the local app local: only the host names it was started for (no DNS rebinding: a web page the
user visits cannot read the API through a name of its own that resolves to 127.0.0.1), headers that forbid
framing, content sniffing and foreign scripts, and uploads refused by their declared size before any byte is
spooled to disk."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "Referrer-Policy": "no-referrer",
}
MULTIPART_OVERHEAD = 64 * 2**10
"""Bytes a multipart upload may carry beyond its file (boundaries, part headers, the file name)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address to bind) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> list[str]:
    """The ``Host`` header names the app answers to when bound to ``bind``: the loopback names, ``bind`` itself,
    this machine's names when bound to every interface, and ``extra`` (``--allowed-host``)."""
    hosts = [*LOOPBACK_HOSTS, *extra]
    if bind in WILDCARD_HOSTS:
        hosts += [socket.gethostname(), socket.getfqdn()]
    elif not is_loopback(bind):
        hosts.append(bind)
    return list(dict.fromkeys(h.strip("[]") for h in hosts))


def secure(app: FastAPI, hosts: Iterable[str], max_upload_bytes: Callable[[], int]) -> None:
    """Add the host check, the security headers and the upload-size check to ``app``.

    ``max_upload_bytes`` is read per request (the app's limit can change in tests).
    """

    @app.middleware("http")
    async def _headers_and_upload_size(request: Request, call_next: Callable[[Request], Awaitable[Response]]):
        if request.method == "POST":
            declared = request.headers.get("content-length")
            limit = max_upload_bytes()
            if declared is None or not declared.isdigit():
                response: Response = JSONResponse({"detail": "uploads need a Content-Length header"}, status_code=411)
            elif int(declared) > limit + MULTIPART_OVERHEAD:
                detail = f"upload of {int(declared)} bytes: larger than the upload limit of {limit // 2**20} MiB"
                response = JSONResponse({"detail": detail}, status_code=413)
            else:
                response = await call_next(request)
        else:
            response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    # added last, so it runs first: a request with a foreign Host header gets nothing else
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))

"""Security primitives of the survey server: tokens, their hashes, CSRF tokens and response headers.

Invitation and admin tokens are 256-bit random URL-safe strings; only their SHA-256 is stored (a
high-entropy token needs no slow password hash). CSRF tokens are HMAC-SHA256 of a per-survey secret
and the scope they protect (one rater, one admin session), compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def new_token() -> str:
    """Return a new unguessable token (32 random bytes, URL-safe base64, 43 characters)."""
    return secrets.token_urlsafe(32)


def well_formed(token: str) -> bool:
    """Return True when ``token`` looks like one of ours (checked before any database lookup)."""
    return bool(TOKEN_PATTERN.fullmatch(token or ""))


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest under which ``token`` is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(secret: str, scope: str) -> str:
    """Return the CSRF token of ``scope`` (e.g. 'rater:3') under the survey ``secret``."""
    return hmac.new(secret.encode(), scope.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: str, scope: str, given: str | None) -> bool:
    """Return True when ``given`` is the CSRF token of ``scope`` (constant-time comparison)."""
    return bool(given) and hmac.compare_digest(csrf_token(secret, scope), str(given))

"""Page tokens of task listings. Temporal answers a garbled page token with an unknown error that its
client retries for seconds, and the token of one listing must not page another: so the API hands out
Temporal's token with a MAC of it and of the listing's query, and refuses any other at once (422)."""

from __future__ import annotations

import hashlib
import hmac

from ..engine.errors import InvalidRequestError

MAC_CHARS = 16


def sign_page_token(secret: str, token: bytes, query: str) -> str:
    return token.hex() + _mac(secret, token, query)


def read_page_token(secret: str, text: str, query: str) -> bytes:
    raw, mac = text[:-MAC_CHARS], text[-MAC_CHARS:]
    try:
        token = bytes.fromhex(raw)
    except ValueError:
        token = b""
    if not token or not hmac.compare_digest(mac, _mac(secret, token, query)):
        raise InvalidRequestError(
            "invalid page_token: pass the next_page_token of the previous page, with the same filters"
        )
    return token


def _mac(secret: str, token: bytes, query: str) -> str:
    digest = hmac.new(secret.encode(), token + b"\0" + query.encode(), hashlib.sha256).hexdigest()
    return digest[:MAC_CHARS]

"""Standard Webhooks signatures (https://www.standardwebhooks.com).

``webhook-signature`` is ``v1,`` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))
where the key is the base64 part of a ``whsec_...`` secret; with several secrets (rotation)
the header holds one signature per secret, separated by spaces.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence

__all__ = ["secret_key", "sign", "verify"]


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret.  :raises ValueError: not a valid secret."""
    if not secret.startswith("whsec_"):
        raise ValueError("a webhook secret starts with 'whsec_' followed by base64")
    try:
        key = base64.b64decode(secret[len("whsec_"):], validate=True)
    except (ValueError, TypeError):
        raise ValueError("the part after 'whsec_' is not valid base64") from None
    if len(key) < 16:
        raise ValueError("a webhook secret must hold at least 16 bytes (24 base64 characters)")
    return key


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for ``body``."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(secret_key(s), content, hashlib.sha256).digest()).decode()
        for s in secrets
    )


def verify(secret: str, msg_id: str, timestamp: str, body: bytes, header: str, tolerance: float = 300) -> bool:
    """Check a delivery the way a consumer should: timestamp within ``tolerance`` seconds,
    and one of the signatures matching (constant-time comparison)."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(time.time() - ts) > tolerance:
        return False
    expected = sign([secret], msg_id, ts, body).split(",", 1)[1]
    for part in header.split():
        version, _, signature = part.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False

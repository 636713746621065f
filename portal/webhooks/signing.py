"""Standard Webhooks signatures: `v1,` + base64 HMAC-SHA256 of "{id}.{timestamp}.{body}",
keyed with the base64 part of a `whsec_` secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format prefix, not a secret)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(secrets_: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    """Space-separated signatures: during a rotation both secrets sign, so receivers can
    switch at their own pace."""
    return " ".join(sign(s, message_id, timestamp, body) for s in secrets_)

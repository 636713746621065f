"""Personal API tokens: create (the secret is shown once), verify, record use, revoke."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select

from portal.api.models import CUSTOMER_SCOPES, SCOPES, ApiToken
from portal.auth.models import User
from portal.db import utcnow
from portal.extensions import db

PREFIX = "hdp_"
ADMIN_SCOPES = {"webhooks:admin", "users:write"}
# Writing last use on every request would make every GET a write; a minute is precise enough.
LAST_USE_PRECISION = timedelta(minutes=1)


class TokenError(ValueError):
    """A token request that cannot be granted; the message is shown as is."""


def allowed_scopes(user: User) -> list[str]:
    """A token never exceeds its owner: customers get their own tickets and the KB."""
    if user.is_admin:
        return list(SCOPES)
    if user.is_agent:
        return [s for s in SCOPES if s not in ADMIN_SCOPES]
    return list(CUSTOMER_SCOPES)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(user: User, name: str, scopes: list[str],
                 expires_at: datetime | None) -> tuple[ApiToken, str]:
    """Returns the token row and the full token text, which is never stored or shown again."""
    name = " ".join((name or "").split())[:100]
    if not name:
        raise TokenError("Give the token a name, so you know later what uses it.")
    chosen = sorted(set(scopes))
    if not chosen:
        raise TokenError("Choose at least one scope.")
    refused = set(chosen) - set(allowed_scopes(user))
    if refused:
        raise TokenError(f"Your role cannot grant {', '.join(sorted(refused))}.")
    if expires_at is not None and expires_at <= utcnow():
        raise TokenError("The expiry date must be in the future.")
    public_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    token = ApiToken(public_id=public_id, user_id=user.id, name=name,
                     secret_hash=_digest(secret), scopes=" ".join(chosen),
                     created_at=utcnow(), expires_at=expires_at)
    db.session.add(token)
    db.session.flush()
    return token, f"{PREFIX}{public_id}_{secret}"


def parse(text: str) -> tuple[str, str] | None:
    if not text.startswith(PREFIX):
        return None
    public_id, _, secret = text[len(PREFIX):].partition("_")
    if len(public_id) != 8 or not secret:
        return None
    return public_id, secret


def authenticate(text: str) -> ApiToken | None:
    """The usable token `text` names, or None (unknown, wrong secret, revoked, expired)."""
    parts = parse(text)
    if parts is None:
        return None
    public_id, secret = parts
    token = db.session.scalar(select(ApiToken).where(ApiToken.public_id == public_id))
    if token is None or not hmac.compare_digest(token.secret_hash, _digest(secret)):
        return None
    return token if token.usable(utcnow()) else None


def use_is_stale(token: ApiToken, ip: str | None) -> bool:
    """True when the recorded last use is older than a minute or from another address."""
    return (token.last_used_at is None or token.last_used_ip != ip
            or utcnow() - token.last_used_at >= LAST_USE_PRECISION)


def record_use(token: ApiToken, ip: str | None) -> None:
    token.last_used_at = utcnow()
    token.last_used_ip = (ip or "")[:45] or None


def tokens_of(user: User) -> list[ApiToken]:
    return list(db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id)
        .order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc())
    ))


def revoke(token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = utcnow()

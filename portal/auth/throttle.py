"""Sign-in throttling per account as well as per address.

Three limits, counting failed sign-ins only (a success costs nothing):

- per address (`LOGIN_RATE_LIMIT`, every attempt): one machine trying many accounts;
- per account *and* address (`LOGIN_ACCOUNT_ADDRESS_RATE_LIMIT`): the waits grow, a minute
  after 5 failures, an hour after 20, a day after 50; it never touches the owner elsewhere;
- per account from everywhere (`LOGIN_ACCOUNT_RATE_LIMIT`): a slower ceiling for an attack
  spread over many addresses. So that it cannot lock the real owner out, a browser that has
  signed in to the account before (it holds a signed "known device" cookie naming the account)
  or that came through a password-reset link is exempt from it. The owner can always reset.
"""

from __future__ import annotations

import hashlib

from flask import current_app, request
from flask_limiter.util import get_remote_address
from itsdangerous import BadSignature, URLSafeSerializer

KNOWN_DEVICE_COOKIE = "portal_known_device"
KNOWN_DEVICE_AGE = 365 * 24 * 3600
MAX_KNOWN_ACCOUNTS = 5


def _account(email: str) -> str:
    """A short digest of the normalised email: counters and cookies never hold the address."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]


def _attempted_account() -> str:
    return _account(request.form.get("email", ""))


def account_key() -> str:
    return f"account:{_attempted_account()}"


def account_address_key() -> str:
    return f"account:{_attempted_account()}|{get_remote_address()}"


def failed(response) -> bool:
    """A sign-in that did not succeed shows the form again (200); success redirects."""
    return response.status_code == 200


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="known-device")


def _known_accounts() -> list[str]:
    try:
        accounts = _serializer().loads(request.cookies.get(KNOWN_DEVICE_COOKIE, ""))
    except BadSignature:
        return []
    return [a for a in accounts if isinstance(a, str)] if isinstance(accounts, list) else []


def known_device() -> bool:
    """True when this browser signed in to the attempted account before."""
    return _attempted_account() in _known_accounts()


def remember_device(response, email: str):
    """Mark this browser as one the account's owner uses (after a sign-in or a reset)."""
    account = _account(email)
    accounts = [a for a in _known_accounts() if a != account][-(MAX_KNOWN_ACCOUNTS - 1):]
    response.set_cookie(
        KNOWN_DEVICE_COOKIE, _serializer().dumps([*accounts, account]), max_age=KNOWN_DEVICE_AGE,
        httponly=True, samesite="Lax", secure=current_app.config.get("SESSION_COOKIE_SECURE",
                                                                      False),
        path="/auth/",
    )
    return response

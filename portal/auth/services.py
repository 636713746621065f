"""Account operations: registration, sign-in checks, password reset tokens, staff accounts."""

from __future__ import annotations

import hashlib
import logging
import secrets

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select

from portal.auth.models import Organization, Role, User
from portal.db import utcnow
from portal.extensions import db

logger = logging.getLogger(__name__)

# A hash that no password matches, checked for unknown emails so timing does not reveal them.
_DUMMY_HASH = None


class AccountError(ValueError):
    """A user-facing reason an account operation was refused."""


def normalize_email(email: str) -> str:
    return email.strip().lower()


def find_user(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalize_email(email)))


def organization_for_email(email: str) -> Organization | None:
    domain = normalize_email(email).rpartition("@")[2]
    return db.session.scalar(select(Organization).where(func.lower(Organization.domain) == domain))


def create_user(
    email: str, name: str, password: str, role: Role = Role.CUSTOMER, *, confirmed: bool = False
) -> User:
    email = normalize_email(email)
    if find_user(email) is not None:
        raise AccountError("An account with this email already exists. Sign in instead.")
    user = User(email=email, name=name.strip(), role=role)
    user.set_password(password)
    if role == Role.CUSTOMER:
        user.organization = organization_for_email(email)
    if confirmed:
        user.email_confirmed_at = utcnow()
    db.session.add(user)
    db.session.flush()
    logger.info("User %s created with role %s", user.id, role.value)
    return user


def authenticate(email: str, password: str) -> User | None:
    global _DUMMY_HASH
    user = find_user(email)
    if user is None:
        if _DUMMY_HASH is None:
            from werkzeug.security import generate_password_hash

            _DUMMY_HASH = generate_password_hash(secrets.token_hex(8), method="scrypt")
        from werkzeug.security import check_password_hash

        check_password_hash(_DUMMY_HASH, password)
        return None
    if not user.check_password(password) or not user.active:
        return None
    return user


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _password_fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def make_reset_token(user: User) -> str:
    """A signed token naming the user and a fingerprint of the current password hash.

    Once the password changes, the fingerprint no longer matches: the link is single-use.
    """
    return _serializer("password-reset").dumps({"u": user.id, "p": _password_fingerprint(user)})


def user_for_reset_token(token: str) -> User:
    max_age = current_app.config["RESET_TOKEN_MAX_AGE"]
    try:
        data = _serializer("password-reset").loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise AccountError("This reset link has expired. Ask for a new one below.") from exc
    except BadSignature as exc:
        raise AccountError("This reset link is not valid. Ask for a new one below.") from exc
    user = db.session.get(User, data.get("u")) if isinstance(data, dict) else None
    if user is None or data.get("p") != _password_fingerprint(user) or not user.active:
        raise AccountError("This reset link has already been used. Ask for a new one below.")
    return user


def change_password(user: User, password: str) -> None:
    user.set_password(password)
    user.rotate_session_token()  # signs out other sessions and remember-me cookies


def make_confirm_token(user: User) -> str:
    return _serializer("confirm-email").dumps({"u": user.id, "e": user.email})


def confirm_email(token: str) -> User:
    try:
        data = _serializer("confirm-email").loads(token, max_age=7 * 24 * 3600)
    except BadSignature as exc:
        raise AccountError("This confirmation link is not valid or has expired.") from exc
    user = db.session.get(User, data.get("u"))
    if user is None or user.email != data.get("e"):
        raise AccountError("This confirmation link is not valid or has expired.")
    if user.email_confirmed_at is None:
        user.email_confirmed_at = utcnow()
        from portal.signals import email_confirmed

        email_confirmed.send(user)
    return user

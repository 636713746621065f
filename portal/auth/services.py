"""Account operations: registration, sign-in checks, emailed tokens, staff accounts.

Functions here change the session and flush; the calling view (or CLI command) commits once.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.security import check_password_hash, generate_password_hash

from portal.auth.models import AccountToken, Organization, Role, User
from portal.auth.passwords import RULE_VERSION, password_problem
from portal.cluster import memo
from portal.db import Page, paginate, utcnow
from portal.extensions import db

logger = logging.getLogger(__name__)

USERS = "users"  # change-feed topic: the signed-in users each process remembers
memo.watch(USERS, User, Organization)


@functools.cache
def _dummy_hash(method: str) -> str:
    """A hash no password matches, checked for unknown emails so timing does not reveal them."""
    return generate_password_hash(secrets.token_hex(16), method=method)


class AccountError(ValueError):
    """A user-facing reason an account operation was refused."""


def normalize_email(email: str) -> str:
    return email.strip().lower()


def find_user(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalize_email(email)))


def organization_for_email(email: str) -> Organization | None:
    domain = normalize_email(email).rpartition("@")[2]
    return db.session.scalar(select(Organization).where(func.lower(Organization.domain) == domain))


def join_organization_by_domain(user: User) -> None:
    """A customer joins the organisation of their email's domain once the address is proven.

    Until then anyone could type an address at that domain and read its shared tickets, so an
    unconfirmed (or newly changed) address belongs to no organisation.
    """
    if user.role != Role.CUSTOMER or user.email_confirmed_at is None:
        user.organization = None
        return
    user.organization = organization_for_email(user.email)


def change_email(user: User, email: str) -> None:
    """A new address is unproven: it leaves the organisation until it is confirmed."""
    user.email = normalize_email(email)
    user.email_confirmed_at = None
    join_organization_by_domain(user)
    logger.info("User %s changed their email; organisation access waits for confirmation",
                user.id)


def create_user(
    email: str, name: str, password: str, role: Role = Role.CUSTOMER, *, confirmed: bool = False,
    password_judged: bool = False,
) -> User:
    email = normalize_email(email)
    user = User(email=email, name=name.strip(), role=role)
    # Hashing is slow: done before the first query takes the lock.
    user.set_password(password, judged=password_judged)
    if find_user(email) is not None:
        raise AccountError("An account with this email already exists. Sign in instead.")
    if confirmed:
        user.email_confirmed_at = utcnow()
    try:
        with db.session.begin_nested():  # a concurrent sign-up with the same email loses cleanly
            db.session.add(user)
            join_organization_by_domain(user)
    except IntegrityError as exc:
        raise AccountError("An account with this email already exists. Sign in instead.") from exc
    logger.info("User %s created with role %s", user.id, role.value)
    return user


def authenticate(email: str, password: str) -> User | None:
    """The user with this email and password, or None. Raises AccountError when deactivated.

    Only someone who knows the password learns that the account is deactivated.
    """
    user = find_user(email)
    if user is None:
        # Take as long as checking a real password would.
        check_password_hash(_dummy_hash(current_app.config["PASSWORD_HASH_METHOD"]), password)
        return None
    if not user.check_password(password):
        return None
    if not user.active:
        raise AccountError("This account has been deactivated. Contact the support team.")
    return user


def password_too_weak(user: User, password: str) -> bool:
    """Whether the password `user` just signed in with fails today's rule (it may predate it).

    Judged once per password and rule version, the verdict kept on the user: judging loads
    zxcvbn's word lists, 12 MB in every web worker that ever did, which sign-ins (most of a
    worker's password checks) then never load. The caller commits."""
    if user.password_rule == RULE_VERSION:
        return False
    if password_problem(password, name=user.name, email=user.email):
        return True
    user.password_rule = RULE_VERSION
    return False


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


# Emailed single-use links: what each is for, how long it lives, and what the page calls it.
RESET, INVITE = "reset", "invite"
_TOKEN_KINDS = {RESET: ("RESET_TOKEN_MAX_AGE", "reset"),
                INVITE: ("INVITE_MAX_AGE", "invitation")}


def _token_hash(token: str) -> str:
    """Tokens carry 256 random bits, so a plain SHA-256 is enough: nothing to brute-force."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user: User, purpose: str) -> str:
    """A fresh random link token for `user`; any earlier one of the same kind stops working.

    Only its hash is stored, with its expiry; the token itself goes into the email alone.
    """
    now = utcnow()
    _spend_tokens(user, purpose, now)
    token = secrets.token_urlsafe(32)
    max_age = current_app.config[_TOKEN_KINDS[purpose][0]]
    db.session.add(AccountToken(user=user, purpose=purpose, token_hash=_token_hash(token),
                                created_at=now, expires_at=now + timedelta(seconds=max_age)))
    # A day past expiry a token is of no use, not even to say "already used": keep the table
    # small.
    db.session.execute(delete(AccountToken).where(AccountToken.expires_at < now - timedelta(
        days=1)))
    db.session.flush()
    return token


def _spend_tokens(user: User, purpose: str | None, now) -> None:
    stmt = update(AccountToken).where(AccountToken.user_id == user.id,
                                      AccountToken.spent_at.is_(None))
    if purpose is not None:
        stmt = stmt.where(AccountToken.purpose == purpose)
    db.session.execute(stmt.values(spent_at=now))


def _live_token(purpose: str, token: str) -> AccountToken:
    what = _TOKEN_KINDS[purpose][1]
    row = db.session.scalar(select(AccountToken).where(
        AccountToken.token_hash == _token_hash(token), AccountToken.purpose == purpose))
    if row is None:
        raise AccountError(f"This {what} link is not valid.")
    if row.spent_at is not None:
        raise AccountError(f"This {what} link has already been used, or a newer one was sent.")
    if row.expires_at <= utcnow():
        raise AccountError(f"This {what} link has expired.")
    if not row.user.active:
        raise AccountError(f"This {what} link is not valid.")
    return row


def user_for_token(purpose: str, token: str) -> User:
    """The user a live link belongs to (the page with the form); AccountError otherwise."""
    return _live_token(purpose, token).user


def spend_token(purpose: str, token: str) -> User:
    """Use a link once: of two requests racing with the same token, only one gets the user."""
    row = _live_token(purpose, token)
    spent = db.session.execute(
        update(AccountToken).where(AccountToken.id == row.id, AccountToken.spent_at.is_(None))
        .values(spent_at=utcnow())
    )
    if spent.rowcount != 1:
        raise AccountError(f"This {_TOKEN_KINDS[purpose][1]} link has already been used.")
    return row.user


def accept_invite(user: User, password: str, *, judged: bool = False) -> None:
    """The invited person chose a password; the emailed link proved the address."""
    change_password(user, password, judged=judged)
    if user.email_confirmed_at is None:
        user.email_confirmed_at = utcnow()


def change_password(user: User, password: str, *, judged: bool = False) -> None:
    """`judged`: the caller found it meets the password rule (User.set_password)."""
    user.set_password(password, judged=judged)
    _spend_tokens(user, None, utcnow())  # no emailed link outlives the password it was for
    user.invited_at = None  # an invited person who chose a password has accepted
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
        join_organization_by_domain(user)
        db.session.flush()  # subscribers read the membership's id
        from portal.signals import email_confirmed

        email_confirmed.send(user)
    return user


# --- staff administration -------------------------------------------------------------------

STAFF_ROLES = (Role.AGENT, Role.ADMIN)


def invite_staff(email: str, name: str, role: Role, invited_by: User) -> User:
    """An account with an unusable password; the invitee sets one through the emailed link."""
    user = create_user(email, name, secrets.token_urlsafe(32), role)
    user.invited_at = utcnow()
    logger.info("User %s invited as %s by user %s", user.id, role.value, invited_by.id)
    return user


def _active_admins() -> int:
    return db.session.scalar(
        select(func.count(User.id)).where(User.role == Role.ADMIN, User.active.is_(True))
    )


def _guard_last_admin(user: User, actor: User, change: str) -> None:
    if user.id == actor.id:
        raise AccountError(f"You cannot {change} your own account; ask another admin.")
    if user.role == Role.ADMIN and user.active and _active_admins() <= 1:
        raise AccountError(f"You cannot {change} the last active admin.")


def change_role(user: User, role: Role, actor: User) -> None:
    if role == user.role:
        return
    if user.role == Role.ADMIN:
        _guard_last_admin(user, actor, "remove the admin role from")
    logger.info("User %s role %s -> %s by user %s", user.id, user.role.value, role.value, actor.id)
    user.role = role


def set_active(user: User, active: bool, actor: User) -> None:
    """Deactivating signs the user out everywhere: their session token changes."""
    if active == user.active:
        return
    if not active:
        _guard_last_admin(user, actor, "deactivate")
        user.rotate_session_token()
    user.active = active
    logger.info("User %s %s by user %s", user.id, "reactivated" if active else "deactivated",
                actor.id)


USER_FILTERS = {
    "all": None,
    "staff": User.role.in_(STAFF_ROLES),
    "customers": User.role == Role.CUSTOMER,
    "admins": User.role == Role.ADMIN,
    "invited": User.invited_at.is_not(None),
    "deactivated": User.active.is_(False),
}


def search_users(query: str = "", show: str = "all", page: int = 1, per_page: int = 25) -> Page:
    """Users whose name or email contains `query`, newest first, one page at a time."""
    stmt = select(User).outerjoin(User.organization).options(contains_eager(User.organization))
    if USER_FILTERS.get(show) is not None:
        stmt = stmt.where(USER_FILTERS[show])
    query = query.strip()
    if query:
        pattern = f"%{_escape_like(query.lower())}%"
        stmt = stmt.where(
            or_(
                func.lower(User.name).like(pattern, escape="\\"),
                User.email.like(pattern, escape="\\"),
                func.lower(Organization.name).like(pattern, escape="\\"),
            )
        )
    return paginate(stmt.order_by(User.created_at.desc(), User.id.desc()), page, per_page)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def signed_in_user(user_id: int, token: str) -> User | None:
    """The active user whose session (or remember-me) token this is, with the organisation.

    Every signed-in page asked the database for its user (0.8 ms of the request). The row is
    now remembered per process until any user or organisation changes (portal.cluster.memo:
    at once in the process that made the change, within about a second in the others), so a
    disabled account, a changed password (a new token) or an organisation that stops sharing
    still ends what it must. The request gets its own copy of the remembered user, attached to
    its session without a statement, which it may change like any loaded user."""
    remembered = memo.remember(USERS, user_id, lambda: _detached_user(user_id))
    if remembered is None or remembered.session_token != token or not remembered.active:
        return None
    loaded = db.session.identity_map.get(sa_inspect(remembered).key)
    if loaded is not None:  # already read by this request: that instance, as it stands
        return loaded
    return db.session.merge(remembered, load=False)


def _detached_user(user_id: int) -> User | None:
    """The user and organisation as detached objects with every column loaded, built from
    one row: never the request's own instances, which its commit would expire (or which
    expunging would take from it)."""
    row = db.session.execute(
        select(User.__table__, Organization.__table__)
        .outerjoin(Organization, Organization.id == User.organization_id)
        .where(User.id == user_id)).first()
    if row is None:
        return None
    user = _detached(User, row)
    organization = _detached(Organization, row) if user.organization_id is not None else None
    set_committed_value(user, "organization", organization)
    return user


def _detached(model, row):
    obj = model(**{attr.key: row._mapping[attr.columns[0]]
                   for attr in sa_inspect(model).column_attrs})
    make_transient_to_detached(obj)
    return obj

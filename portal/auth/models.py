"""People: users with a role, and the organisations customers belong to."""

from __future__ import annotations

import enum
import secrets
from datetime import datetime

from flask import current_app
from flask_login import UserMixin
from sqlalchemy import Boolean, DateTime, Enum, ForeignKey, Index, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from portal.auth.passwords import RULE_VERSION
from portal.db import Base, utcnow


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    ADMIN = "admin"


def _new_session_token() -> str:
    return secrets.token_urlsafe(24)


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # Customers who register with an email at this domain join the organisation.
    domain: Mapped[str | None] = mapped_column(String(200), unique=True)
    shares_tickets: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    members: Mapped[list[User]] = relationship(back_populates="organization")


class User(UserMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    # The version of the password rule (passwords.RULE_VERSION) this password was judged to
    # meet; NULL: not judged yet. A sign-in judges only a password not judged under today's rule.
    password_rule: Mapped[int | None] = mapped_column(SmallInteger)
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e]),
        default=Role.CUSTOMER,
        index=True,
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL"), index=True
    )
    email_confirmed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Part of the Flask-Login id: rotating it signs out every session and remember-me cookie.
    session_token: Mapped[str] = mapped_column(String(64), default=_new_session_token)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Set while an invited staff member has not yet chosen a password.
    invited_at: Mapped[datetime | None] = mapped_column(DateTime)

    organization: Mapped[Organization | None] = relationship(back_populates="members")

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email} {self.role.value}>"

    # Flask-Login
    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"

    @property
    def is_active(self) -> bool:
        return self.active

    def rotate_session_token(self) -> None:
        self.session_token = _new_session_token()

    # Passwords: scrypt through Werkzeug (a memory-hard KDF with a random salt per hash).
    def set_password(self, password: str, *, judged: bool = False) -> None:
        """`judged`: the caller found it meets today's rule (passwords.password_problem);
        otherwise it is judged at its first sign-in."""
        method = current_app.config["PASSWORD_HASH_METHOD"]
        self.password_hash = generate_password_hash(password, method=method)
        self.password_rule = RULE_VERSION if judged else None

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def invitation_pending(self) -> bool:
        return self.invited_at is not None

    @property
    def is_agent(self) -> bool:
        """Agents and admins both work tickets and the KB."""
        return self.role in (Role.AGENT, Role.ADMIN)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


class AccountToken(Base):
    """An emailed single-use link (password reset, staff invitation).

    Only a SHA-256 of the random token is kept, so whoever reads the database cannot use a
    live link. A token is spent when used, when a newer one of its kind is issued, or when
    the password changes.
    """

    __tablename__ = "account_tokens"
    __table_args__ = (Index("ix_account_tokens_user_purpose", "user_id", "purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    spent_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship()

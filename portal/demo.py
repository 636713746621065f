"""Demo content for a first run: accounts, KB articles and tickets in several states.

Demo passwords are random per instance and kept in `instance/demo-accounts.json` (git-ignored),
so a second run prints the same sign-ins and keeps the data.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select

from portal.auth.models import Organization, Role, User
from portal.auth.passwords import password_problem
from portal.auth.services import create_user
from portal.extensions import db

DEMO_ACCOUNTS = {
    "customer": ("customer@example.com", "Casey Customer", Role.CUSTOMER),
    "agent": ("agent@example.com", "Alex Agent", Role.AGENT),
    "admin": ("admin@example.com", "Ada Admin", Role.ADMIN),
}


def _credentials_file() -> Path:
    return Path(current_app.instance_path) / "demo-accounts.json"


def _demo_password(name: str, email: str) -> str:
    """16 random characters the password rule accepts (a rare draw spells part of a name)."""
    while True:
        password = secrets.token_urlsafe(12)
        if password_problem(password, name=name, email=email) is None:
            return password


def seed_demo() -> dict[str, tuple[str, str]]:
    """Seed once; return {role: (email, password)} for printing."""
    path = _credentials_file()
    if path.exists():
        return {role: tuple(pair) for role, pair in json.loads(path.read_text()).items()}
    if db.session.scalar(select(func.count(User.id))):
        return {}  # a database with accounts of its own: leave it alone
    org = Organization(name="Example Ltd", domain="example.com", shares_tickets=True)
    db.session.add(org)
    db.session.flush()
    accounts: dict[str, tuple[str, str]] = {}
    users: dict[str, User] = {}
    for role, (email, name, role_enum) in DEMO_ACCOUNTS.items():
        password = _demo_password(name, email)
        users[role] = create_user(email, name, password, role_enum, confirmed=True,
                                  password_judged=True)
        accounts[role] = (email, password)
    from portal.agent.demo import seed_support
    from portal.kb.demo import seed_kb
    from portal.tickets.demo import seed_tickets

    seed_kb(author=users["agent"])
    seed_tickets(customer=users["customer"], agent=users["agent"])
    seed_support(agent=users["agent"])
    db.session.commit()
    # Searchable on the first page view, before the worker has started.
    from portal.search.queue import process_all

    process_all()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(accounts, f, indent=2)
    return accounts

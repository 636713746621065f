"""CLI: `flask users create` and `flask demo seed`."""

import json
from pathlib import Path

from sqlalchemy import func, select

from portal.auth.models import Role, User
from portal.extensions import db


def test_users_create_agent(app):
    result = app.test_cli_runner().invoke(args=[
        "users", "create", "--role", "agent", "--email", "Nia@Example.com", "--name", "Nia",
        "--password", "ferry lantern"])
    assert result.exit_code == 0, result.output
    assert "Created agent nia@example.com" in result.output
    user = db.session.scalar(select(User).where(User.email == "nia@example.com"))
    assert user.role == Role.AGENT and user.check_password("ferry lantern")


def test_users_create_refuses_duplicates_and_short_passwords(app, agent):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "--email", agent.email, "--name", "X",
                                 "--password", "ferry lantern"])
    assert result.exit_code != 0 and "already exists" in result.output
    result = runner.invoke(args=["users", "create", "--email", "s@example.com", "--name", "S",
                                 "--password", "short"])
    assert result.exit_code != 0 and "at least 12 characters" in result.output
    result = runner.invoke(args=["users", "create", "--email", "s@example.com", "--name", "S",
                                 "--password", "ferry lantern", "--role", "root"])
    assert result.exit_code != 0
    assert db.session.scalar(select(func.count(User.id))) == 1


def test_db_upgrade_is_idempotent(app):
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0 and "Database is up to date." in result.output


def test_demo_seed_twice_keeps_data(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "seed"])
    assert first.exit_code == 0, first.output
    for email in ("customer@example.com", "agent@example.com", "admin@example.com"):
        assert email in first.output
    saved = json.loads((Path(app.instance_path) / "demo-accounts.json").read_text())
    customer_email, customer_password = saved["customer"]
    customer = db.session.scalar(select(User).where(User.email == customer_email))
    assert customer.check_password(customer_password)
    customer.name = "Renamed by the user"
    db.session.commit()
    users = db.session.scalar(select(func.count(User.id)))

    second = runner.invoke(args=["demo", "seed"])
    assert second.exit_code == 0, second.output
    assert second.output == first.output  # the same URL and sign-ins
    assert db.session.scalar(select(func.count(User.id))) == users
    db.session.refresh(customer)
    assert customer.name == "Renamed by the user"


def test_demo_seed_leaves_a_database_with_its_own_accounts_alone(app, admin):
    result = app.test_cli_runner().invoke(args=["demo", "seed"])
    assert result.exit_code == 0
    assert "already has accounts" in result.output
    assert db.session.scalar(select(func.count(User.id))) == 1

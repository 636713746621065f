"""Admin jobs as Flask CLI commands: `flask --app app db|users|demo ...`."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from portal.auth.models import Role
from portal.extensions import db

db_cli = AppGroup("db", help="Database schema (Alembic migrations).")
users_cli = AppGroup("users", help="Manage accounts.")
demo_cli = AppGroup("demo", help="Demo content.")


@db_cli.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (creates the database on first run)."""
    from flask import current_app

    from portal.migrate import upgrade

    upgrade(current_app, revision)
    click.echo("Database is up to date.")


@db_cli.command("revision")
@click.option("-m", "--message", required=True)
def db_revision(message: str) -> None:
    """Autogenerate a migration from the models (developers)."""
    from flask import current_app

    from portal.migrate import revision

    revision(current_app, message)


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option(
    "--role", type=click.Choice([r.value for r in Role]), default=Role.CUSTOMER.value,
    show_default=True,
)
def users_create(email: str, name: str, password: str, role: str) -> None:
    """Create an account (agents and admins are created this way or on /admin/users)."""
    from portal.auth.passwords import password_problem
    from portal.auth.services import AccountError, create_user

    problem = password_problem(password, name=name, email=email)
    if problem:
        raise click.BadParameter(problem, param_hint="--password")
    try:
        user = create_user(email, name, password, Role(role), confirmed=True,
                           password_judged=True)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Created {user.role.value} {user.email} (id {user.id}).")


@demo_cli.command("seed")
def demo_seed() -> None:
    """Seed demo content on first run only, then print the URL and demo sign-ins."""
    from flask import current_app

    from portal.demo import seed_demo

    accounts = seed_demo()
    click.echo("")
    click.echo(f"  The portal is starting on {current_app.config['BASE_URL']}")
    if accounts:
        click.echo("  Demo sign-ins:")
        for role, (email, password) in accounts.items():
            click.echo(f"    {role:<9} {email:<28} password: {password}")
    else:
        click.echo("  This database already has accounts of its own, so no demo content was added.")
        click.echo("  Create staff with: flask --app app users create --role admin ...")
    click.echo("")


def init_app(app: Flask) -> None:
    for group in (db_cli, users_cli, demo_cli):
        app.cli.add_command(group)

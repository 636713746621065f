from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from portal.db import Base
from portal.extensions import db
from portal.migrate import include_object


def test_config_defaults_from_instance(app_factory, tmp_path):
    app = app_factory(SECRET_KEY=None)
    assert app.config["DATABASE_URL"].startswith("sqlite:///")
    key_file = tmp_path / "instance0" / "secret_key"
    assert key_file.exists() and app.config["SECRET_KEY"] == key_file.read_text()
    # The generated key is kept: a second app on the same instance reads the same one.
    from portal import create_app

    again = create_app({"INSTANCE_PATH": str(tmp_path / "instance0"), "TESTING": True})
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"]


def test_env_overrides(monkeypatch, app_factory):
    monkeypatch.setenv("PORTAL_MAIL_PORT", "2525")
    monkeypatch.setenv("PORTAL_MAIL_SENDER", "Help <help@example.com>")
    app = app_factory()
    assert app.config["MAIL_PORT"] == 2525
    assert app.config["MAIL_SENDER"] == "Help <help@example.com>"


def test_models_and_migrations_agree(app):
    with db.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"include_object": include_object}),
            Base.metadata,
        )
    assert diff == [], f"models differ from migrations; run `flask db revision`: {diff}"


def test_sqlite_pragmas(app):
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_security_headers(client):
    response = client.get("/auth/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"]
    assert "HX-Request" in response.headers["Vary"]


def test_friendly_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert b"We couldn't find that page" in response.data


def test_unexpected_error_has_id_and_no_traceback(app, client, caplog):
    @app.route("/boom")
    def boom():
        raise RuntimeError("secret-detail")

    response = client.get("/boom")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Traceback" not in body and "secret-detail" not in body
    error_id = body.split("<code>")[1].split("</code>")[0]
    assert error_id in caplog.text


def test_production_password_hashing_is_full_strength(tmp_path):
    from portal import create_app

    app = create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x"})
    assert app.config["PASSWORD_HASH_METHOD"] == "scrypt"  # Werkzeug's default cost


def test_client_address_from_a_trusted_proxy(app_factory):
    from flask import request

    app = app_factory(TRUSTED_PROXIES=1)

    @app.route("/whoami")
    def whoami():
        return request.remote_addr

    client = app.test_client()
    assert client.get("/whoami", headers={"X-Forwarded-For": "203.0.113.7"}).text == "203.0.113.7"
    direct = app_factory()
    direct.add_url_rule("/whoami", view_func=whoami)
    assert direct.test_client().get(
        "/whoami", headers={"X-Forwarded-For": "203.0.113.7"}).text == "127.0.0.1"


def test_migrations_have_one_head(app):
    from alembic.script import ScriptDirectory

    from portal.migrate import alembic_config

    heads = ScriptDirectory.from_config(alembic_config(app)).get_heads()
    assert len(heads) == 1, f"several migration heads, add a merge revision: {heads}"

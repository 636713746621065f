"""A fresh install that lacks htmx or the search model says so loudly at start."""

import logging

from portal import create_app
from portal.cluster import startup_problems


def test_missing_htmx_and_model_are_named(app, tmp_path):
    app.config.update(SEMANTIC_SEARCH=True, SEMANTIC_MODEL_PATH=str(tmp_path / "none.zip"))
    app.static_folder = str(tmp_path)  # a checkout where `npm ci` never ran
    problems = startup_problems(app)
    assert any("htmx is missing" in p for p in problems)
    assert any("search model is missing" in p for p in problems)


def test_a_complete_install_has_no_problems(app):
    app.config.update(SEMANTIC_SEARCH=False)
    assert startup_problems(app) == []  # `make install` ran: htmx is in static/vendor


def test_the_warning_is_logged_at_start(tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="portal.cluster"):
        create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x",
                    "SEMANTIC_SEARCH": True,
                    "SEMANTIC_MODEL_PATH": str(tmp_path / "missing-model.zip")})
    assert "!!!" in caplog.text and "search model is missing" in caplog.text


def test_production_on_postgresql_needs_the_secret_key_from_configuration(tmp_path,
                                                                          monkeypatch):
    import pytest

    monkeypatch.delenv("PORTAL_SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="PORTAL_SECRET_KEY"):
        create_app({"INSTANCE_PATH": str(tmp_path), "DEVELOPMENT": False,
                    "DATABASE_URL": "postgresql+psycopg://portal@127.0.0.1:1/portal"})
    assert not (tmp_path / "secret_key").exists()  # no host-local key was made up

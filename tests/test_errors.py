"""Friendly error pages, the request-size limit and error ids in the log."""

import logging

import pytest
from flask import abort


@pytest.fixture
def failing_app(app):
    @app.route("/fail/<int:code>")
    def fail(code):
        abort(code)

    @app.route("/crash")
    def crash():
        raise RuntimeError("database password is hunter2")

    return app


@pytest.mark.parametrize(
    ("path", "code", "text"),
    [
        ("/fail/400", 400, "Bad request"),
        ("/fail/403", 403, "You don't have access to this page."),
        ("/no/such/page", 404, "We couldn't find that page"),
        ("/fail/405", 405, "That action isn't available here."),
        ("/crash", 500, "Something went wrong on our side."),
    ],
)
def test_friendly_error_pages(failing_app, client, path, code, text, caplog):
    response = client.get(path)
    assert response.status_code == code
    body = response.get_data(as_text=True)
    assert text in body
    assert 'class="site-header"' in body and "Go to the Help Center" in body  # the site layout
    assert "Traceback" not in body and "hunter2" not in body and "werkzeug" not in body


def test_wrong_method_on_a_real_route_is_friendly(client):
    response = client.delete("/auth/login")
    assert response.status_code == 405
    assert "That action isn't available here." in response.get_data(as_text=True)


def test_500_shows_an_error_id_that_is_in_the_log(failing_app, client, caplog):
    body = client.get("/crash").get_data(as_text=True)
    error_id = body.split("<code>")[1].split("</code>")[0]
    assert len(error_id) == 8
    [record] = [r for r in caplog.records if error_id in r.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info  # the traceback is in the log


def test_oversized_body_gets_a_friendly_413(app_factory):
    app = app_factory(MAX_CONTENT_LENGTH=1024)
    client = app.test_client()
    response = client.post("/auth/login", data={"email": "a@example.com", "password": "x" * 5000})
    assert response.status_code == 413
    body = response.get_data(as_text=True)
    assert "Too large" in body and "Traceback" not in body


def test_oversized_form_goes_back_to_its_page_with_a_message(app_factory):
    app = app_factory(MAX_CONTENT_LENGTH=1024)
    client = app.test_client()
    response = client.post(
        "/auth/register", data={"name": "x" * 5000},
        headers={"Referer": "http://localhost/auth/register"}, follow_redirects=True,
    )
    assert response.status_code == 200
    assert "That upload was too large" in response.get_data(as_text=True)


def test_oversized_body_from_another_site_is_not_redirected_there(app_factory):
    app = app_factory(MAX_CONTENT_LENGTH=1024)
    response = app.test_client().post(
        "/auth/register", data={"name": "x" * 5000}, headers={"Referer": "https://evil.com/"}
    )
    assert response.status_code == 413


def test_error_pages_replace_the_whole_page_for_htmx(client):
    response = client.get("/no/such/page", headers={"HX-Request": "true", "HX-Target": "results"})
    assert response.status_code == 404
    assert response.headers["HX-Retarget"] == "body"
    assert response.headers["HX-Reswap"] == "innerHTML"
    assert "HX-Retarget" not in client.get("/no/such/page").headers

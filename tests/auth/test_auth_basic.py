from sqlalchemy import select

from portal.auth.models import User
from portal.extensions import db


def test_register_signs_in_and_hashes_password(client, app, mailbox):
    response = client.post(
        "/auth/register",
        data={"name": "New Person", "email": "New@Example.com", "password": "ferry lantern",
              "confirm": "ferry lantern"},
    )
    assert response.status_code == 303
    user = db.session.scalar(select(User).where(User.email == "new@example.com"))
    assert user is not None and user.password_hash.startswith("scrypt:")
    assert "ferry lantern" not in user.password_hash
    assert client.get("/account").status_code == 200
    mailbox.wait_for(1)
    assert "/auth/confirm/" in mailbox.text(mailbox.messages[0])


def test_login_logout(client, auth, customer):
    response = auth.login(customer.email)
    assert response.status_code == 303
    assert client.get("/account").status_code == 200
    auth.logout()
    assert client.get("/account").status_code == 302


def test_csrf_required_on_login(app_factory, customer):
    app = app_factory(WTF_CSRF_ENABLED=True)
    with app.test_client() as c:
        response = c.post("/auth/login", data={"email": "x@example.com", "password": "x"})
    assert response.status_code == 400
    assert b"This form has expired" in response.data

"""/admin/users: listing, search, paging, creating and inviting staff, roles, deactivation."""

import pytest
from sqlalchemy import event, select

from portal.auth.models import Role, User
from portal.extensions import db

PASSWORD = "correct horse battery"


def get_user(email: str) -> User:
    user = db.session.scalar(select(User).where(User.email == email))
    db.session.refresh(user)
    return user


@pytest.mark.parametrize("fixture", ["client", "customer_client", "agent_client"])
def test_only_admins_see_user_admin(request, fixture):
    client = request.getfixturevalue(fixture)
    for path in ("/admin/", "/admin/users", "/admin/users/new"):
        assert client.get(path).status_code in (302, 404)
    assert client.post("/admin/users/create", data={
        "create-name": "Eve", "create-email": "eve@example.com", "create-role": "admin",
        "create-password": "ferry lantern"}).status_code in (302, 404)
    assert db.session.scalar(select(User).where(User.email == "eve@example.com")) is None


def test_admin_index_links_to_users(admin_client):
    body = admin_client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/users"' in body


def test_list_shows_staff_and_customers_with_search_and_filters(admin_client, make_user):
    make_user("customer", email="jo@acme.example.com", name="Jo Bloggs")
    make_user("agent", email="sam@example.com", name="Sam Agent")
    body = admin_client.get("/admin/users").get_data(as_text=True)
    assert "Jo Bloggs" in body and "Sam Agent" in body and "Ada Admin" in body

    body = admin_client.get("/admin/users?q=BLOGGS").get_data(as_text=True)
    assert "Jo Bloggs" in body and "Sam Agent" not in body
    body = admin_client.get("/admin/users?q=acme").get_data(as_text=True)
    assert "Jo Bloggs" in body and "Sam Agent" not in body

    body = admin_client.get("/admin/users?show=staff").get_data(as_text=True)
    assert "Sam Agent" in body and "Ada Admin" in body and "Jo Bloggs" not in body
    body = admin_client.get("/admin/users?show=customers").get_data(as_text=True)
    assert "Jo Bloggs" in body and "Sam Agent" not in body
    body = admin_client.get("/admin/users?q=%25").get_data(as_text=True)  # LIKE wildcards are text
    assert "No users match" in body


def test_list_is_paged_with_a_constant_number_of_queries(admin_client, make_user, app):
    for n in range(30):
        make_user("customer", email=f"c{n:02}@example.com", name=f"Customer {n:02}")
    admin_client.get("/admin/users?page=2")  # the signed-in user is remembered again
    statements = []
    event.listen(db.engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    first = admin_client.get("/admin/users").get_data(as_text=True)
    queries = len(statements)
    assert "31 users, page 1 of 2" in first and 'rel="next"' in first
    assert queries <= 4  # the count and the page: no query per row
    second = admin_client.get("/admin/users?page=2").get_data(as_text=True)
    assert "page 2 of 2" in second and 'rel="prev"' in second
    assert "Customer 29" in first and "Customer 29" not in second
    # An out-of-range page shows the last one instead of an empty list.
    assert "page 2 of 2" in admin_client.get("/admin/users?page=99").get_data(as_text=True)


def test_htmx_search_returns_only_the_results(admin_client):
    response = admin_client.get(
        "/admin/users?q=ada", headers={"HX-Request": "true", "HX-Target": "user-results"}
    )
    body = response.get_data(as_text=True)
    assert "<html" not in body and 'id="user-results"' in body and "Ada Admin" in body
    assert "HX-Target" in response.headers["Vary"]


def test_create_staff_with_initial_password(admin_client, client):
    response = admin_client.post("/admin/users/create", data={
        "create-name": "Nia Agent", "create-email": "Nia@Example.com", "create-role": "agent",
        "create-password": "initial password"})
    assert response.status_code == 303
    user = get_user("nia@example.com")
    assert user.role == Role.AGENT and user.email_confirmed_at and not user.invitation_pending
    assert user.check_password("initial password")
    assert f"/admin/users/{user.id}" == response.headers["Location"]


def test_create_staff_bad_input_keeps_what_was_typed(admin_client, agent):
    response = admin_client.post("/admin/users/create", data={
        "create-name": "Dup", "create-email": agent.email, "create-role": "admin",
        "create-password": "initial password"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f"{agent.email} already has an account" in body and 'value="Dup"' in body
    assert get_user(agent.email).role == Role.AGENT
    response = admin_client.post("/admin/users/create", data={
        "create-name": "Short", "create-email": "short@example.com", "create-role": "agent",
        "create-password": "short"})
    assert "Use at least 12 characters." in response.get_data(as_text=True)
    response = admin_client.post("/admin/users/create", data={
        "create-name": "Boss", "create-email": "boss@example.com", "create-role": "superuser",
        "create-password": "initial password"})
    assert "Not a valid choice" in response.get_data(as_text=True)
    assert db.session.scalar(select(User).where(User.email.like("%boss%"))) is None


def test_invite_agent_by_email_end_to_end(app, admin_client, mailbox, link_in):
    response = admin_client.post("/admin/users/invite", data={
        "invite-name": "Ivy Invited", "invite-email": "ivy@example.com", "invite-role": "agent"})
    assert response.status_code == 303
    user = get_user("ivy@example.com")
    assert user.invitation_pending and user.role == Role.AGENT
    [message] = mailbox.wait_for(1)
    text = mailbox.text(message)
    assert "Ada Admin invited you" in text and "expires in 7 days" in text
    link = link_in(text, "/auth/invite/")
    assert "Invitation pending" in admin_client.get("/admin/users?show=invited").get_data(
        as_text=True)

    # Before accepting, the invitee cannot sign in with any password we know.
    invitee = app.test_client()
    assert invitee.post("/auth/login", data={"email": "ivy@example.com",
                                             "password": PASSWORD}).status_code == 200
    assert "Welcome, Ivy Invited" in invitee.get(link).get_data(as_text=True)
    response = invitee.post(link, data={"password": "mismatch one", "confirm": "mismatch two"})
    assert "The passwords do not match." in response.get_data(as_text=True)
    response = invitee.post(link, data={"password": "ochre harbour", "confirm": "ochre harbour"})
    assert response.status_code == 303 and response.headers["Location"] == "/agent/"
    assert invitee.get("/agent/").status_code == 200
    user = get_user("ivy@example.com")
    assert not user.invitation_pending and user.email_confirmed_at is not None

    # The link works once.
    response = app.test_client().get(link, follow_redirects=True)
    assert ("This invitation link has already been used, or a newer one was sent."
            in response.get_data(as_text=True))


def test_invite_can_be_sent_again(admin_client, mailbox):
    admin_client.post("/admin/users/invite", data={
        "invite-name": "Ivy", "invite-email": "ivy@example.com", "invite-role": "admin"})
    user = get_user("ivy@example.com")
    response = admin_client.post(f"/admin/users/{user.id}/resend-invite", follow_redirects=True)
    assert "A new invitation is on its way" in response.get_data(as_text=True)
    assert len(mailbox.wait_for(2)) == 2


def test_change_role(admin_client, customer, client):
    response = admin_client.post(f"/admin/users/{customer.id}/role", data={"role": "agent"},
                                 follow_redirects=True)
    assert "Casey Customer&#39;s role is now Agent." in response.get_data(as_text=True)
    assert get_user(customer.email).role == Role.AGENT


def test_admin_cannot_demote_or_deactivate_themselves(admin_client, admin):
    for path, data in ((f"/admin/users/{admin.id}/role", {"role": "customer"}),
                       (f"/admin/users/{admin.id}/deactivate", {})):
        response = admin_client.post(path, data=data, follow_redirects=True)
        assert "You cannot" in response.get_data(as_text=True)
    user = get_user(admin.email)
    assert user.role == Role.ADMIN and user.active


def test_the_last_active_admin_stays(make_user, app):
    from portal.auth.services import AccountError, change_role

    only_admin = make_user("admin")
    other_admin = make_user("admin", active=False)
    with pytest.raises(AccountError, match="last active admin"):
        change_role(only_admin, Role.AGENT, actor=other_admin)


def test_deactivated_user_is_signed_out_and_cannot_sign_in(app, admin_client, customer):
    theirs = app.test_client()
    theirs.post("/auth/login", data={"email": customer.email, "password": PASSWORD,
                                     "remember": "y"})
    assert theirs.get("/account").status_code == 200

    response = admin_client.post(f"/admin/users/{customer.id}/deactivate", follow_redirects=True)
    assert "is deactivated and signed out everywhere" in response.get_data(as_text=True)
    assert theirs.get("/account").status_code == 302  # session and remember-me both dead
    response = theirs.post("/auth/login", data={"email": customer.email, "password": PASSWORD})
    assert "This account has been deactivated" in response.get_data(as_text=True)

    admin_client.post(f"/admin/users/{customer.id}/reactivate")
    response = theirs.post("/auth/login", data={"email": customer.email, "password": PASSWORD})
    assert response.status_code == 303


def test_unknown_user_is_404(admin_client):
    assert admin_client.get("/admin/users/9999").status_code == 404
    assert admin_client.post("/admin/users/9999/deactivate").status_code == 404

"""Control characters never reach the database (issue 11, item 6).

A NUL byte in a description or reply used to be stored and shown. Every form derives from
PortalForm, which strips C0 control characters (and DEL) from every text field, keeping tab
and newline and turning CR LF into LF.
"""

import importlib
import inspect
import pkgutil

import pytest
from flask_wtf import FlaskForm
from sqlalchemy import select

import portal
from portal.extensions import db
from portal.forms import PortalForm, strip_control
from portal.kb.models import SearchLog
from portal.tickets.models import Message, Ticket

NASTY = "Line one\x00 with NUL\r\nLine\ttwo \x1b[31mred\x07\x7f end\x0b"
CLEAN = "Line one with NUL\nLine\ttwo [31mred end"


def test_strip_control_keeps_tabs_and_newlines():
    assert strip_control(NASTY) == CLEAN
    assert strip_control("a\rb") == "a\nb"
    assert strip_control(None) is None


def test_description_and_reply_are_stored_without_control_characters(customer_client):
    response = customer_client.post("/tickets/new", data={
        "subject": "Printer\x00 smokes", "description": NASTY, "type": "question"})
    assert response.status_code == 303
    reference = response.headers["Location"].split("/")[2]
    response = customer_client.post(f"/tickets/{reference}/reply", data={"body": NASTY})
    assert response.status_code == 303
    ticket = db.session.get(Ticket, Ticket.id_from_reference(reference))
    bodies = db.session.scalars(select(Message.body).where(Message.ticket_id == ticket.id)).all()
    assert bodies == [CLEAN.strip(), CLEAN.strip()]
    assert "\x00" not in ticket.subject
    page = customer_client.get(f"/tickets/{reference}").get_data(as_text=True)
    assert "\x00" not in page and "\x1b" not in page


def test_profile_name_loses_control_characters(app, customer_client, customer):
    customer_client.post("/account", data={"action": "profile", "profile-name": "Casey\x00 C\x1b",
                                           "profile-email": customer.email})
    db.session.refresh(customer)
    assert customer.name == "Casey C"


def test_a_search_query_is_logged_without_control_characters(app, client):
    client.get("/kb/search", query_string={"q": "printer\x00\x1b fire"})
    logged = db.session.scalars(select(SearchLog.query)).all()
    assert logged and all("\x00" not in q and "\x1b" not in q for q in logged)


def _form_classes():
    for module_info in pkgutil.walk_packages(portal.__path__, "portal."):
        if ".migrations" in module_info.name:
            continue
        module = importlib.import_module(module_info.name)
        for _name, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, FlaskForm) and obj.__module__ == module.__name__:
                yield obj


@pytest.mark.parametrize("form_class", sorted(set(_form_classes()), key=lambda c: c.__qualname__
                                                + c.__module__), ids=lambda c: c.__qualname__)
def test_every_form_strips_control_characters(app, form_class):
    """One place every form uses: a new form that forgets it fails here."""
    assert issubclass(form_class, PortalForm)

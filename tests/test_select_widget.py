"""The portal's select widget writes the same HTML as WTForms' own, only faster."""

import pytest
from wtforms import widgets
from wtforms.fields.choices import Choice

from portal.agent.forms import PropertiesForm
from portal.forms import Select


@pytest.mark.parametrize("choice", [
    Choice('a"<&', "L<b>", True, None),
    Choice(1, "x", False, None),
    Choice(True, None, False, None),
    Choice("v", "", True, None),
    Choice("k", "with attributes", False, {"disabled": True}),
])
def test_options_render_as_wtforms_does(choice):
    assert Select.render_option(choice) == widgets.Select.render_option(choice)


def test_portal_forms_use_it(app):
    with app.test_request_context():
        form = PropertiesForm(formdata=None)
        assert isinstance(form.status.widget, Select)
        form.status.data = "open"
        assert '<option selected value="open">' in form.status()

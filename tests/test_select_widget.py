"""The portal's select widget writes the same HTML as WTForms' own, only faster."""

import pytest
from wtforms import widgets
from wtforms.fields.choices import Choice

from portal.agent.forms import PropertiesForm
from portal.forms import Select, select_options


@pytest.mark.parametrize("choice", [
    Choice('a"<&', "L<b>", True, None),
    Choice(1, "x", False, None),
    Choice(True, None, False, None),
    Choice("v", "", True, None),
    Choice("k", "with attributes", False, {"disabled": True}),
])
def test_options_render_as_wtforms_does(choice):
    assert Select.render_option(choice) == widgets.Select.render_option(choice)


@pytest.mark.parametrize("render_kw", [{}, {"id": "other<id"}, {"aria_describedby": "x-hint"},
                                       {"class_": "wide"}])
@pytest.mark.parametrize("coerce,choices,data", [
    (str, [("", "— keep —"), ("open", "Open & <b>"), ('a"b', "Quote")], "open"),
    (int, [(0, "— none —"), (1, "One"), (2, "Two")], 2),
    (str, [("x", "X")], None),
])
def test_selects_render_as_wtforms_does(app, render_kw, coerce, choices, data):
    from wtforms import Form, SelectField
    from wtforms.validators import DataRequired

    choices = select_options(choices)

    class Plain(Form):
        pick = SelectField("Pick", coerce=coerce, choices=choices)
        needed = SelectField("Needed", coerce=coerce, choices=choices,
                             validators=[DataRequired()])

    form = Plain(data={"pick": data, "needed": data})
    for field in (form.pick, form.needed):
        ours = Select()(field, **render_kw)
        assert ours == widgets.Select()(field, **render_kw)


def test_portal_forms_use_it(app):
    with app.test_request_context():
        form = PropertiesForm(formdata=None)
        assert isinstance(form.status.widget, Select)
        form.status.data = "open"
        assert '<option selected value="open">' in form.status()

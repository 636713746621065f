"""Small pieces every domain's WTForms share, and the form class they all derive from."""

import re

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.fields.choices import SelectChoice

# C0 control characters (and DEL) but tab, newline and carriage return (handled below).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def strip_control(value):
    """Text without control characters: a NUL or an escape sequence typed into a form is never
    stored, shown or mailed. Tab and newline stay; CR LF and lone CR become newlines."""
    if not isinstance(value, str):
        return value
    return _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


class PortalForm(FlaskForm):
    """Every form of the portal: each text field (text, textarea, email, hidden, search...)
    passes `strip_control` before its own filters. Passwords are taken exactly as typed."""

    class Meta:
        def bind_field(self, form, unbound_field, options):
            field_class = unbound_field.field_class
            if issubclass(field_class, StringField) and not issubclass(field_class, PasswordField):
                filters = (strip_control, *unbound_field.kwargs.get("filters", ()))
                return unbound_field.bind(form=form, **{**options, "filters": filters})
            return unbound_field.bind(form=form, **options)


def trim(value):
    """A field filter: trim text, leave anything else (None, files) as it is."""
    return value.strip() if isinstance(value, str) else value


def select_options(pairs) -> list[SelectChoice]:
    """Select options from (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]

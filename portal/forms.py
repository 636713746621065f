"""Small pieces every domain's WTForms share, and the form class they all derive from."""

import re

from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms import PasswordField, StringField, widgets
from wtforms.fields.choices import SelectChoice

# C0 control characters (and DEL) but tab, newline and carriage return (handled below).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def strip_control(value):
    """Text without control characters: a NUL or an escape sequence typed into a form is never
    stored, shown or mailed. Tab and newline stay; CR LF and lone CR become newlines."""
    if not isinstance(value, str):
        return value
    return _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


class Select(widgets.Select):
    """WTForms' select, written by format strings: the generic attribute builder (sorting and
    escaping a dict per option, reading every flag of the field) was most of the time the
    agent pages spent on their forms. Same HTML; a select with attributes of its own
    (aria-*, required, multiple, option groups, an option's render_kw) takes WTForms' path."""

    def __call__(self, field, **kwargs):
        if (self.multiple or kwargs.keys() - {"id"} or field.has_groups()
                or any(getattr(field.flags, attr, False) for attr in self.validation_attrs)):
            return super().__call__(field, **kwargs)
        options = "".join(self.render_option(choice) for choice in field.iter_choices())
        # Every interpolated value is escaped (the options are Markup): 3-4x faster than
        # Markup.format or concatenating Markup pieces.
        return Markup(f'<select id="{escape(kwargs.get("id", field.id))}" '  # noqa: S704
                      f'name="{escape(field.name)}">{options}</select>')

    @classmethod
    def render_option(cls, choice, **kwargs):
        if choice.render_kw or kwargs:
            return super().render_option(choice, **kwargs)
        value = str(choice.value) if isinstance(choice.value, bool) else choice.value
        selected = " selected" if choice.selected else ""
        return Markup(f'<option{selected} value="{escape(value)}">'  # noqa: S704 (escaped)
                      f"{escape(choice.label or choice.value)}</option>")

    @classmethod
    def _dispatch_render_option(cls):
        return cls.render_option


class PortalForm(FlaskForm):
    """Every form of the portal: each text field (text, textarea, email, hidden, search...)
    passes `strip_control` before its own filters. Passwords are taken exactly as typed.
    Selects use the `Select` widget above."""

    class Meta:
        def bind_field(self, form, unbound_field, options):
            field_class = unbound_field.field_class
            kwargs = unbound_field.kwargs
            if issubclass(field_class, StringField) and not issubclass(field_class, PasswordField):
                options = {**options, "filters": (strip_control, *kwargs.get("filters", ()))}
            default_widget = getattr(field_class, "widget", None)
            if "widget" not in kwargs and type(default_widget) is widgets.Select:
                options = {**options, "widget": Select(multiple=default_widget.multiple)}
            return unbound_field.bind(form=form, **options)


def trim(value):
    """A field filter: trim text, leave anything else (None, files) as it is."""
    return value.strip() if isinstance(value, str) else value


def select_options(pairs) -> list[SelectChoice]:
    """Select options from (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]

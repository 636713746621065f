"""Small pieces every domain's WTForms share."""

from wtforms.fields.choices import SelectChoice


def trim(value):
    """A field filter: trim text, leave anything else (None, files) as it is."""
    return value.strip() if isinstance(value, str) else value


def select_options(pairs) -> list[SelectChoice]:
    """Select options from (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]

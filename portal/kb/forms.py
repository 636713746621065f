from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import AnyOf, InputRequired, Length, Optional

from portal.forms import PortalForm, select_options, trim
from portal.kb.models import Visibility
from portal.kb.services import VOTE_REASONS


class VoteForm(PortalForm):
    helpful = HiddenField(validators=[InputRequired(), AnyOf(["yes", "no"])])
    reason = RadioField("What was wrong?", choices=select_options(VOTE_REASONS.items()),
                        validators=[Optional()])
    comment = TextAreaField("Tell us more (optional)", validators=[Length(max=1000)],
                            filters=[trim])


class ArticleForm(PortalForm):
    title = StringField("Title", validators=[InputRequired(), Length(max=200)], filters=[trim])
    section_id = SelectField("Section", coerce=int, validators=[InputRequired()])
    body = TextAreaField("Content (Markdown)", validators=[Length(max=100_000)])
    labels = StringField("Labels", validators=[Length(max=500)], filters=[trim])
    visibility = SelectField("Who can see it", choices=select_options([
        (Visibility.PUBLIC.value, "Everyone"),
        (Visibility.CUSTOMERS.value, "Signed-in customers"),
        (Visibility.INTERNAL.value, "Agents only (internal)"),
    ]))
    promoted = BooleanField("Promote on the home page")
    version = HiddenField()
    note = StringField("Change note (optional)", validators=[Length(max=200)], filters=[trim])


class PreviewForm(PortalForm):
    body = TextAreaField(validators=[Length(max=100_000)])


class VersionForm(PortalForm):
    """Status changes and restores name the version they act on (optimistic locking)."""

    version = IntegerField(validators=[InputRequired()])


class CategoryForm(PortalForm):
    name = StringField("Name", validators=[InputRequired(), Length(max=120)], filters=[trim])
    description = TextAreaField("Description", validators=[Length(max=1000)], filters=[trim])


class SectionForm(CategoryForm):
    category_id = SelectField("Category", coerce=int, validators=[InputRequired()])


class MoveArticlesForm(PortalForm):
    section_id = SelectField("Move selected articles to", coerce=int,
                             validators=[InputRequired()])


class ActionForm(PortalForm):
    """A bare CSRF-protected button (reorder, mark done)."""

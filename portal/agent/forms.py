"""Agent workspace forms (Flask-WTF: every POST carries a CSRF token)."""

from __future__ import annotations

from wtforms import (
    BooleanField,
    HiddenField,
    MultipleFileField,
    RadioField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from portal.forms import PortalForm, select_options
from portal.tickets.models import Priority, Status, TicketType


def _label(value: str) -> str:
    return value.replace("_", "-").capitalize()


STATUS_CHOICES = select_options([(s.value, _label(s.value)) for s in Status])
PRIORITY_CHOICES = select_options([(p.value, p.value.capitalize()) for p in Priority])
TYPE_CHOICES = select_options([(t.value, t.value.capitalize()) for t in TicketType])
KEEP = select_options([("", "— no change —")])


class ReplyForm(PortalForm):
    body = TextAreaField("Reply", validators=[DataRequired("Write a reply or a note first."),
                                             Length(max=50_000)])
    internal = BooleanField("Internal note (agents only)")
    attachments = MultipleFileField("Attach files")
    status_after = SelectField(
        "Then set status",
        choices=select_options(
            [("", "— keep status —")]
            + [(s.value, _label(s.value))
               for s in (Status.OPEN, Status.PENDING, Status.ON_HOLD, Status.SOLVED)]
        ),
        validators=[Optional()],
    )
    submit = SubmitField("Send")


class PropertiesForm(PortalForm):
    status = SelectField("Status", choices=STATUS_CHOICES)
    priority = SelectField("Priority", choices=PRIORITY_CHOICES)
    type = SelectField("Type", choices=TYPE_CHOICES)
    category = SelectField("Category", coerce=int, choices=[])
    group = SelectField("Group", coerce=int, choices=[])
    assignee = SelectField("Assignee", coerce=int, choices=[])
    tags = StringField("Tags", validators=[Length(max=500)],
                       description="Separate tags with commas or spaces.")
    submit = SubmitField("Save changes")


class BulkForm(PortalForm):
    assignee = SelectField("Assign to", choices=[], validators=[Optional()])
    status = SelectField("Set status", choices=KEEP + STATUS_CHOICES, validators=[Optional()])
    priority = SelectField("Set priority", choices=KEEP + PRIORITY_CHOICES,
                           validators=[Optional()])
    add_tags = StringField("Add tags", validators=[Length(max=300)])
    remove_tags = StringField("Remove tags", validators=[Length(max=300)])
    submit = SubmitField("Apply to selected")


class MergeForm(PortalForm):
    target = StringField("Merge into ticket", validators=[DataRequired("Give a ticket reference."),
                                                          Length(max=30)],
                         description="The reference of the ticket to keep, e.g. TKT-1042.")
    # Asked only when the two tickets have different requesters (see views.merge).
    requester_access = RadioField(
        "Should this ticket's requester see the other ticket?",
        choices=select_options([
            ("no", "No: tell them this request was closed; they get no access to it"),
            ("cc", "Yes: add them as a CC, so they see its whole conversation"),
        ]),
        default="no", validators=[Optional()],
    )
    confirmed_for = HiddenField()  # the target reference the choice above was made for
    submit = SubmitField("Merge this ticket")


class ArticleDraftForm(PortalForm):
    section = SelectField("Section", coerce=int, choices=[])
    title = StringField("Title", validators=[DataRequired("Give the article a title."),
                                             Length(max=200)])
    body = TextAreaField("Body (Markdown)", validators=[DataRequired("The body is empty."),
                                                        Length(max=100_000)])
    submit = SubmitField("Create draft article")

"""Customer ticket forms. Every field keeps what was typed when another one is refused."""

from __future__ import annotations

import secrets

from email_validator import EmailNotValidError, validate_email
from wtforms import (
    EmailField,
    HiddenField,
    MultipleFileField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Email, InputRequired, Length, Optional, ValidationError

from portal.forms import PortalForm, trim
from portal.tickets.models import TicketType

MAX_CCS = 10
TYPE_CHOICES = [
    SelectChoice(TicketType.QUESTION.value, "Question"),
    SelectChoice(TicketType.INCIDENT.value, "Incident: something is broken"),
    SelectChoice(TicketType.PROBLEM.value, "Problem: something keeps going wrong"),
    SelectChoice(TicketType.REQUEST.value, "Request: please do something for me"),
]



def _one_line(value):
    """A single line of printable text: a crafted post can put CR/LF or NUL in an <input>, and
    the subject and name end up in email headers."""
    if not isinstance(value, str):
        return value
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())


def new_form_key() -> str:
    return secrets.token_urlsafe(24)


def parse_ccs(raw: str) -> list[str]:
    """Comma/semicolon/space separated addresses, normalised; ValueError names a bad one."""
    emails: list[str] = []
    for part in raw.replace(";", ",").replace("\n", ",").replace(" ", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            email = validate_email(part, check_deliverability=False).normalized.lower()
        except EmailNotValidError as exc:
            raise ValueError(f"“{part}” is not a valid email address.") from exc
        if email not in emails:
            emails.append(email)
    if len(emails) > MAX_CCS:
        raise ValueError(f"Add at most {MAX_CCS} addresses.")
    return emails


class CcField(StringField):
    """Free text of addresses; `.emails` holds the parsed list after validation."""

    emails: list[str]

    def pre_validate(self, form):
        try:
            self.emails = parse_ccs(self.data or "")
        except ValueError as exc:
            self.emails = []
            raise ValidationError(str(exc)) from exc


class NewTicketForm(PortalForm):
    name = StringField(
        "Your name", validators=[InputRequired("Tell us your name."), Length(max=120)],
        filters=[_one_line],
    )
    email = EmailField(
        "Your email",
        validators=[
            InputRequired("We need your email to send you updates."),
            Email(message="Enter a valid email address."),
            Length(max=254),
        ],
        filters=[trim],
    )
    subject = StringField(
        "Subject",
        validators=[
            InputRequired("Give your request a subject."),
            Length(min=3, max=200, message="Keep the subject between 3 and 200 characters."),
        ],
        filters=[_one_line],
    )
    description = TextAreaField(
        "Description",
        validators=[
            InputRequired("Describe what you need help with."),
            Length(max=20000, message="Keep the description under 20,000 characters."),
        ],
        filters=[trim],
    )
    type = SelectField("Type", choices=TYPE_CHOICES, default=TicketType.QUESTION.value)
    category = SelectField("Category", choices=[], validate_choice=True)
    cc = CcField(
        "CC (optional)", validators=[Optional(), Length(max=2000)], filters=[trim]
    )
    attachments = MultipleFileField("Attachments (optional)")
    form_key = HiddenField(validators=[Length(max=64)])
    follow_up_of = HiddenField(validators=[Length(max=20)])

    def __init__(self, *args, visitor: bool, categories, **kwargs):
        super().__init__(*args, **kwargs)
        self.category.choices = [SelectChoice("", "Choose a category…")] + [
            SelectChoice(str(c.id), c.name) for c in categories
        ]
        if not categories:
            del self.category
        if not visitor:
            del self.name
            del self.email
        if not self.form_key.data:
            self.form_key.data = new_form_key()

    def validate_category(self, field):
        if not field.data:
            raise ValidationError("Choose the category that fits best.")


class ReplyForm(PortalForm):
    body = TextAreaField(
        "Your reply",
        validators=[
            InputRequired("Write your reply first."),
            Length(max=20000, message="Keep the reply under 20,000 characters."),
        ],
        filters=[trim],
    )
    attachments = MultipleFileField("Attachments (optional)")
    form_key = HiddenField(validators=[Length(max=64)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.form_key.data:
            self.form_key.data = new_form_key()


class RatingForm(PortalForm):
    rating = RadioField(
        "How would you rate the support you received?",
        choices=[
            SelectChoice("good", "Good, I'm satisfied"), SelectChoice("bad", "Bad, I'm unsatisfied")
        ],
        validators=[InputRequired("Choose good or bad.")],
    )
    comment = TextAreaField(
        "Comment (optional)", validators=[Optional(), Length(max=2000)], filters=[trim]
    )


class FindRequestForm(PortalForm):
    email = EmailField(
        "Your email",
        validators=[
            InputRequired(), Email(message="Enter a valid email address."), Length(max=254)
        ],
        filters=[trim],
    )
    reference = StringField(
        "Request reference (optional)", validators=[Optional(), Length(max=20)], filters=[trim]
    )


class ActionForm(PortalForm):
    """A CSRF-only form for one-button actions (mark solved, deflection)."""

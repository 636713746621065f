"""Forms for surges, problems and known issues (every POST through Flask-WTF: CSRF)."""

from wtforms import BooleanField, EmailField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import Email, InputRequired, Length, Optional

from portal.forms import PortalForm, select_options
from portal.surges.detection import SENSITIVITIES


class CreateProblemForm(PortalForm):
    subject = StringField("Problem subject", validators=[InputRequired(), Length(max=200)])


class LinkProblemForm(PortalForm):
    reference = StringField("Problem reference (TKT-…)",
                            validators=[InputRequired(), Length(max=20)])


class ActionForm(PortalForm):
    """A button with nothing but its CSRF token (not a surge, unlink, opt out)."""


class ReplyAllForm(PortalForm):
    body = TextAreaField("Reply to every linked ticket",
                         validators=[InputRequired(), Length(max=20000)])
    solve = BooleanField("Solve the problem and its linked tickets (except those opted out)")
    form_key = HiddenField()


class PublishForm(PortalForm):
    public_text = StringField("Text customers see", validators=[InputRequired(), Length(max=300)])


class SensitivityForm(PortalForm):
    sensitivity = SelectField("Surge sensitivity",
                              choices=select_options(
                                  [(name, name.capitalize()) for name in SENSITIVITIES]))


class FollowForm(PortalForm):
    email = EmailField("Your email", validators=[Optional(), Email(), Length(max=254)])


class UnfollowForm(PortalForm):
    """The unsubscribe link's confirmation button (the signed link names the follower)."""

from wtforms import DateTimeLocalField, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from portal.forms import PortalForm, select_options
from portal.webhooks.models import EVENTS


class EndpointForm(PortalForm):
    url = StringField("URL", validators=[DataRequired(), Length(max=2000)])
    kind = SelectField("Type", choices=select_options([
        ("standard", "Signed JSON (Standard Webhooks)"), ("slack", "Slack incoming webhook")]))
    description = StringField("Description", validators=[Optional(), Length(max=200)])
    events = SelectMultipleField("Events", choices=select_options(
                                     (k, f"{k}: {v}") for k, v in EVENTS.items()),
                                 option_widget=CheckboxInput(),
                                 widget=ListWidget(prefix_label=False),
                                 validators=[DataRequired("Choose at least one event.")])


class ReplayForm(PortalForm):
    since = DateTimeLocalField("Failed since (UTC)", format="%Y-%m-%dT%H:%M",
                               validators=[DataRequired()])

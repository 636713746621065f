from wtforms import DateField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from portal.forms import PortalForm


class NewTokenForm(PortalForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    scopes = SelectMultipleField("Scopes", choices=[], option_widget=CheckboxInput(),
                                 widget=ListWidget(prefix_label=False),
                                 validators=[DataRequired("Choose at least one scope.")])
    expires_on = DateField("Expires on (optional)", validators=[Optional()])

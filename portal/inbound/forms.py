"""The Inbound mail settings form."""

from flask_wtf import FlaskForm
from wtforms import BooleanField


class InboundSettingsForm(FlaskForm):
    add_ccs = BooleanField("Add the CC addresses of a new email to its ticket as CCs")

"""The Inbound mail settings form."""

from wtforms import BooleanField

from portal.forms import PortalForm


class InboundSettingsForm(PortalForm):
    add_ccs = BooleanField("Add the CC addresses of a new email to its ticket as CCs")

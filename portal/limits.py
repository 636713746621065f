"""Limits on what customers and visitors do: filing, replying, uploading, voting, searching.

Each action has two limits, both settings (`PORTAL_<ACTION>_RATE_LIMIT` per account, or per
address for visitors; `PORTAL_<ACTION>_ADDRESS_RATE_LIMIT` per address, looser, since an
office shares one). Defaults are generous for a person and firm for a script. Staff are not
limited here.

Views ask `refused(action)` *after* validating the form, so a refusal is shown like any other
form error: the typed text stays in the form (JavaScript off: a 429 page that is the form
again; htmx: the same partial with the message). The counts live in Flask-Limiter's storage
(`PORTAL_RATELIMIT_STORAGE_URI`), shared by every worker when that is Redis or memcached.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from flask import current_app
from flask_limiter.util import get_remote_address
from flask_login import current_user
from limits import parse_many

from portal.extensions import limiter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Action:
    config: str  # the per-account setting; the per-address one adds "ADDRESS_"
    doing: str  # "filed requests", for the message


ACTIONS = {
    "ticket": Action("TICKET_RATE_LIMIT", "sent new requests"),
    "reply": Action("REPLY_RATE_LIMIT", "sent replies"),
    "upload": Action("UPLOAD_RATE_LIMIT", "attached files"),
    "vote": Action("VOTE_RATE_LIMIT", "rated articles"),
    "search": Action("SEARCH_RATE_LIMIT", "searched"),
}

def _address_setting(action: Action) -> str:
    return action.config.replace("_RATE_LIMIT", "_ADDRESS_RATE_LIMIT")


def _who() -> str:
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"address:{get_remote_address()}"


def _wait_words(seconds: float) -> str:
    if seconds <= 90:
        return f"{max(1, round(seconds))} seconds"
    minutes = round(seconds / 60)
    return f"{minutes} minutes" if minutes <= 90 else f"{round(minutes / 60)} hours"


def refused(name: str, cost: int = 1) -> str | None:
    """Count one `name` action (or `cost` of them); the reason to refuse it, or None.

    Nothing is counted when it is refused, so waiting is all it takes.
    """
    config = current_app.config
    if not config.get("RATELIMIT_ENABLED", True) or cost <= 0:
        return None
    if current_user.is_authenticated and current_user.is_agent:
        return None
    action = ACTIONS[name]
    checks = [
        (item, key)
        for setting, key in ((action.config, _who()),
                             (_address_setting(action), f"address:{get_remote_address()}"))
        for item in parse_many(config[setting])
    ]
    strategy = limiter.limiter
    for item, key in checks:
        if not strategy.test(item, name, key, cost=cost):
            reset = strategy.get_window_stats(item, name, key).reset_time
            logger.warning("Limit %s on %s hit by %s", item, name, key)
            return (f"You have {action.doing} many times in a short while. Please wait "
                    f"{_wait_words(reset - time.time())} and try again; what you typed is kept.")
    for item, key in checks:
        strategy.hit(item, name, key, cost=cost)
    return None


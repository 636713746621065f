"""Who is searching decides what they may find."""

from __future__ import annotations

import enum


class Audience(enum.StrEnum):
    PUBLIC = "public"  # visitors: published + public
    CUSTOMERS = "customers"  # signed-in customers: published + public|customers
    AGENTS = "agents"  # agents and admins: everything published, internal included


# The article visibilities each audience may see (values of portal.kb.models.Visibility).
VISIBLE_TO: dict[Audience, tuple[str, ...]] = {
    Audience.PUBLIC: ("public",),
    Audience.CUSTOMERS: ("public", "customers"),
    Audience.AGENTS: ("public", "customers", "internal"),
}


def audience_for(user) -> Audience:
    """Anonymous -> PUBLIC, customer -> CUSTOMERS, agent/admin -> AGENTS."""
    if user is None or not getattr(user, "is_authenticated", False):
        return Audience.PUBLIC
    return Audience.AGENTS if getattr(user, "is_agent", False) else Audience.CUSTOMERS

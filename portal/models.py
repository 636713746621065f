"""Every model, imported in one place so metadata (and Alembic) sees all tables."""

from portal.api.models import ApiToken, IdempotencyRecord
from portal.auth.models import AccountToken, Organization, Role, User
from portal.cluster.models import ChangeRecord
from portal.db import Base
from portal.inbound.models import BouncingAddress, InboundMessage
from portal.jobs.models import Job, ScheduledRun
from portal.kb.models import (
    Article,
    ArticleEmbedding,
    ArticleRevision,
    ArticleStatus,
    ArticleView,
    ArticleVote,
    IndexQueue,
    KbCategory,
    KbSection,
    SearchLog,
    Visibility,
)
from portal.mail.models import OutboxMessage
from portal.tickets.models import (
    Attachment,
    CannedReply,
    Channel,
    Group,
    Message,
    Priority,
    Setting,
    SlaPolicy,
    Status,
    SuggestionEvent,
    Tag,
    Ticket,
    TicketCategory,
    TicketCC,
    TicketEvent,
    TicketType,
)
from portal.webhooks.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

__all__ = [
    "AccountToken",
    "ApiToken",
    "IdempotencyRecord",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "Article",
    "ArticleEmbedding",
    "ArticleRevision",
    "ArticleStatus",
    "ChangeRecord",
    "ArticleView",
    "ArticleVote",
    "Attachment",
    "Base",
    "BouncingAddress",
    "CannedReply",
    "Channel",
    "Group",
    "InboundMessage",
    "IndexQueue",
    "Job",
    "KbCategory",
    "KbSection",
    "Message",
    "Organization",
    "OutboxMessage",
    "Priority",
    "Role",
    "ScheduledRun",
    "SearchLog",
    "Setting",
    "SlaPolicy",
    "Status",
    "SuggestionEvent",
    "Tag",
    "Ticket",
    "TicketCC",
    "TicketCategory",
    "TicketEvent",
    "TicketType",
    "User",
    "Visibility",
]

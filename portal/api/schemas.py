"""Marshmallow schemas: they validate input and shape output, and the OpenAPI document is
generated from them (flask-smorest + apispec)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from portal.tickets.models import Priority, Status, TicketType


class UTCDateTime(fields.String):
    """ISO 8601 in UTC (`2026-12-06T10:00:00Z`), formatted by portal.api.representations."""

    def __init__(self, **kwargs) -> None:
        kwargs["metadata"] = {"format": "date-time", **kwargs.get("metadata", {})}
        super().__init__(**kwargs)


def _values(enum_class) -> list[str]:
    return [member.value for member in enum_class]


class PageArgs(Schema):
    cursor = fields.String(load_default=None, validate=validate.Length(max=200))
    limit = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


class Person(Schema):
    id = fields.Integer(allow_none=True)
    name = fields.String()
    email = fields.String()


class TicketOut(Schema):
    id = fields.Integer(required=True)
    reference = fields.String(required=True)
    subject = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": _values(Status)})
    priority = fields.String(metadata={"enum": _values(Priority)})
    type = fields.String(metadata={"enum": _values(TicketType)})
    channel = fields.String()
    requester = fields.Nested(Person)
    assignee = fields.Nested(Person, allow_none=True)
    group_id = fields.Integer(allow_none=True)
    organization_id = fields.Integer(allow_none=True)
    tags = fields.List(fields.String())
    created_at = UTCDateTime(required=True)
    updated_at = UTCDateTime(required=True)
    solved_at = UTCDateTime(allow_none=True)
    first_response_due_at = UTCDateTime(allow_none=True)
    resolution_due_at = UTCDateTime(allow_none=True)
    csat_rating = fields.String(allow_none=True)
    url = fields.String()


class TicketPage(Schema):
    data = fields.List(fields.Nested(TicketOut), required=True)
    next_cursor = fields.String(allow_none=True, required=True)
    has_more = fields.Boolean(required=True)


class TicketListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(_values(Status)))
    priority = fields.String(validate=validate.OneOf(_values(Priority)))
    assignee_id = fields.Integer(validate=validate.Range(min=0, max=2**31))
    group_id = fields.Integer(validate=validate.Range(min=0, max=2**31))
    requester_id = fields.Integer(validate=validate.Range(min=1, max=2**31))
    tag = fields.String(validate=validate.Length(max=60))
    q = fields.String(validate=validate.Length(max=200),
                      metadata={"description": "Words in the subject or public messages, "
                                               "or a reference (TKT-1042)"})
    updated_since = fields.DateTime(metadata={"description": "ISO 8601; incremental sync"})
    sort = fields.String(load_default="-updated_at",
                         validate=validate.OneOf(["-updated_at", "updated_at"]))


class TicketCreate(Schema):
    subject = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(required=True, validate=validate.Length(min=1, max=50000))
    type = fields.String(load_default="question", validate=validate.OneOf(_values(TicketType)))
    requester_email = fields.Email(metadata={"description": "Staff: the customer it is for"})
    requester_name = fields.String(validate=validate.Length(min=1, max=120))
    cc = fields.List(fields.Email(), load_default=list, validate=validate.Length(max=20))


class TicketUpdate(Schema):
    status = fields.String(validate=validate.OneOf(_values(Status)))
    priority = fields.String(validate=validate.OneOf(_values(Priority)))
    type = fields.String(validate=validate.OneOf(_values(TicketType)))
    assignee_id = fields.Integer(validate=validate.Range(min=0, max=2**31),
                                 metadata={"description": "0 unassigns"})
    group_id = fields.Integer(validate=validate.Range(min=0, max=2**31),
                              metadata={"description": "0 clears"})
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=60)),
                       validate=validate.Length(max=50))


class AttachmentOut(Schema):
    id = fields.Integer()
    filename = fields.String()
    content_type = fields.String()
    size = fields.Integer()


class MessageOut(Schema):
    id = fields.Integer(required=True)
    ticket_id = fields.Integer()
    author = fields.Nested(Person)
    from_agent = fields.Boolean()
    internal = fields.Boolean()
    body = fields.String()
    channel = fields.String()
    created_at = UTCDateTime()
    attachments = fields.List(fields.Nested(AttachmentOut))


class MessageList(Schema):
    data = fields.List(fields.Nested(MessageOut), required=True)


class AttachmentIn(Schema):
    filename = fields.String(required=True, validate=validate.Length(min=1, max=255))
    content_base64 = fields.String(
        required=True, metadata={"description": "The file's bytes, base64-encoded; checked "
                                 "by content and size exactly as web uploads are"})


class MessageCreate(Schema):
    body = fields.String(required=True, validate=validate.Length(min=1, max=50000))
    status = fields.String(validate=validate.OneOf(_values(Status)),
                           metadata={"description": "Staff: set the status with the reply"})
    attachments = fields.List(fields.Nested(AttachmentIn), load_default=list,
                              validate=validate.Length(max=20))


class NoteCreate(Schema):
    body = fields.String(required=True, validate=validate.Length(min=1, max=50000))
    attachments = fields.List(fields.Nested(AttachmentIn), load_default=list,
                              validate=validate.Length(max=20))


class EventOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    actor = fields.Nested(Person, allow_none=True)
    old_value = fields.String(allow_none=True)
    new_value = fields.String(allow_none=True)
    created_at = UTCDateTime()


class EventList(Schema):
    data = fields.List(fields.Nested(EventOut), required=True)


class UserOut(Schema):
    id = fields.Integer()
    name = fields.String()
    email = fields.String()
    role = fields.String()
    active = fields.Boolean()
    organization_id = fields.Integer(allow_none=True)
    created_at = UTCDateTime()


class UserPage(Schema):
    data = fields.List(fields.Nested(UserOut), required=True)
    next_cursor = fields.String(allow_none=True, required=True)
    has_more = fields.Boolean(required=True)


class OrganizationOut(Schema):
    id = fields.Integer()
    name = fields.String()
    domain = fields.String(allow_none=True)
    shares_tickets = fields.Boolean()


class OrganizationList(Schema):
    data = fields.List(fields.Nested(OrganizationOut), required=True)


class SectionOut(Schema):
    id = fields.Integer()
    name = fields.String()
    slug = fields.String()
    description = fields.String()
    category_id = fields.Integer()


class CategoryOut(Schema):
    id = fields.Integer()
    name = fields.String()
    slug = fields.String()
    description = fields.String()
    sections = fields.List(fields.Nested(SectionOut))


class CategoryList(Schema):
    data = fields.List(fields.Nested(CategoryOut), required=True)


class ArticleOut(Schema):
    id = fields.Integer(required=True)
    title = fields.String()
    slug = fields.String()
    body = fields.String()
    section_id = fields.Integer()
    labels = fields.List(fields.String())
    visibility = fields.String()
    status = fields.String()
    promoted = fields.Boolean()
    version = fields.Integer()
    created_at = UTCDateTime()
    updated_at = UTCDateTime()
    published_at = UTCDateTime(allow_none=True)
    url = fields.String()


class ArticlePage(Schema):
    data = fields.List(fields.Nested(ArticleOut), required=True)
    next_cursor = fields.String(allow_none=True, required=True)
    has_more = fields.Boolean(required=True)


class ArticleListArgs(PageArgs):
    section_id = fields.Integer(validate=validate.Range(min=1, max=2**31))
    status = fields.String(validate=validate.OneOf(["draft", "published", "archived"]))


class ArticleCreate(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    body = fields.String(required=True, validate=validate.Length(min=1, max=200000))
    section_id = fields.Integer(required=True, validate=validate.Range(min=1, max=2**31))
    labels = fields.List(fields.String(validate=validate.Length(max=40)), load_default=list,
                         validate=validate.Length(max=12))
    visibility = fields.String(load_default="public",
                               validate=validate.OneOf(["public", "customers", "internal"]))
    promoted = fields.Boolean(load_default=False)


class ArticleUpdate(Schema):
    title = fields.String(validate=validate.Length(min=1, max=200))
    body = fields.String(validate=validate.Length(min=1, max=200000))
    section_id = fields.Integer(validate=validate.Range(min=1, max=2**31))
    labels = fields.List(fields.String(validate=validate.Length(max=40)),
                         validate=validate.Length(max=12))
    visibility = fields.String(validate=validate.OneOf(["public", "customers", "internal"]))
    promoted = fields.Boolean()


class SearchArgs(Schema):
    q = fields.String(required=True, validate=validate.Length(min=1, max=200))
    limit = fields.Integer(load_default=10, validate=validate.Range(min=1, max=50))


class SearchHit(Schema):
    article_id = fields.Integer()
    title = fields.String()
    url = fields.String()
    section = fields.String()
    category = fields.String()
    snippet = fields.String()
    score = fields.Float()


class SearchOut(Schema):
    query = fields.String()
    total = fields.Integer()
    data = fields.List(fields.Nested(SearchHit), required=True)


class RatingOut(Schema):
    ticket_id = fields.Integer()
    reference = fields.String()
    rating = fields.String()
    comment = fields.String()
    rated_at = UTCDateTime()


class RatingPage(Schema):
    data = fields.List(fields.Nested(RatingOut), required=True)
    next_cursor = fields.String(allow_none=True, required=True)
    has_more = fields.Boolean(required=True)


class EndpointOut(Schema):
    id = fields.Integer()
    url = fields.String()
    kind = fields.String(metadata={"enum": ["standard", "slack"]})
    description = fields.String()
    events = fields.List(fields.String())
    enabled = fields.Boolean()
    disabled_reason = fields.String(allow_none=True)
    secret = fields.String(metadata={"description": "whsec_… (standard endpoints)"})
    created_at = UTCDateTime()


class EndpointList(Schema):
    data = fields.List(fields.Nested(EndpointOut), required=True)


class EndpointCreate(Schema):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    kind = fields.String(load_default="standard", validate=validate.OneOf(["standard", "slack"]))
    description = fields.String(load_default="", validate=validate.Length(max=200))
    events = fields.List(fields.String(validate=validate.Length(max=40)), required=True,
                         validate=validate.Length(min=1, max=20))


class EndpointUpdate(Schema):
    url = fields.String(validate=validate.Length(min=1, max=2000))
    description = fields.String(validate=validate.Length(max=200))
    events = fields.List(fields.String(validate=validate.Length(max=40)),
                         validate=validate.Length(min=1, max=20))
    enabled = fields.Boolean()


class DeliveryOut(Schema):
    id = fields.Integer()
    webhook_id = fields.String()
    event_type = fields.String()
    status = fields.String(metadata={"enum": ["pending", "succeeded", "failed"]})
    attempts = fields.Integer()
    last_status_code = fields.Integer(allow_none=True)
    created_at = UTCDateTime()
    next_attempt_at = UTCDateTime(allow_none=True)


class DeliveryList(Schema):
    data = fields.List(fields.Nested(DeliveryOut), required=True)


class ReplayArgs(Schema):
    since = fields.AwareDateTime(required=True, default_timezone=None,
                                 metadata={"description": "ISO 8601 with offset"})


class ReplayOut(Schema):
    replayed = fields.Integer()


class ReportArgs(Schema):
    start = fields.Date(metadata={"description": "YYYY-MM-DD; default: 29 days before end"})
    end = fields.Date(metadata={"description": "YYYY-MM-DD, inclusive; default: today"})
    group_id = fields.Integer(validate=validate.Range(min=1, max=2**31))
    assignee_id = fields.Integer(validate=validate.Range(min=1, max=2**31))
    priority = fields.String(validate=validate.OneOf(_values(Priority)))


class ReportDay(Schema):
    date = fields.String(metadata={"format": "date"})
    created = fields.Integer()
    solved = fields.Integer()
    reopened = fields.Integer()
    backlog = fields.Integer()


class ReportOut(Schema):
    start = fields.String(metadata={"format": "date"})
    end = fields.String(metadata={"format": "date"})
    summary = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True))
    daily = fields.List(fields.Nested(ReportDay))


class UserCreate(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))


class CategoryCreate(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    description = fields.String(load_default="", validate=validate.Length(max=2000))


class SectionCreate(CategoryCreate):
    category_id = fields.Integer(required=True, validate=validate.Range(min=1, max=2**31))

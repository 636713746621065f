"""A Slack incoming-webhook message for an event: readable text with a `text` fallback.

Slack reads `<…>` as links and mentions, so user text is escaped (&, <, >): a ticket subject
cannot ping `<!channel>`. Sections stay under Slack's 3,000 characters.
"""

from __future__ import annotations

TITLES = {
    "ticket.created": "New ticket", "ticket.updated": "Ticket updated",
    "ticket.replied": "New reply", "ticket.note_added": "Internal note",
    "ticket.solved": "Ticket solved", "ticket.sla_breached": "SLA breached",
    "ticket.stale": "Stale ticket", "csat.rated": "Ticket rated",
    "article.published": "Article published", "surge.detected": "Surge detected",
    "webhook.test": "Test event",
}
MAX_SECTION = 2900


def escape(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message(envelope: dict) -> dict:
    event_type, data = envelope["type"], envelope.get("data", {})
    title = TITLES.get(event_type, event_type)
    if "reference" in data:
        requester = data.get("requester") or {}
        who = requester.get("name") or requester.get("email") or "unknown"
        headline = f"{title}: {data['reference']} {data.get('subject', '')}"
        details = (f"Priority *{escape(data.get('priority', 'normal'))}* · Status "
                   f"*{escape(data.get('status', ''))}* · From {escape(who)}")
        link = data.get("url", "")
        text = f"*<{link}|{escape(data['reference'])} {escape(data.get('subject', ''))}>*\n" \
               f"{details}"
    elif "title" in data:
        headline = f"{title}: {data['title']}"
        link = data.get("url", "")
        text = f"*<{link}|{escape(data['title'])}>*"
    else:
        headline, link = title, ""
        text = escape(data.get("message", title))
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:MAX_SECTION]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(
            f"{event_type} · {envelope.get('timestamp', '')}")}]},
    ]
    if link:
        blocks.append({"type": "actions", "elements": [{
            "type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": link}]})
    return {"text": escape(headline)[:MAX_SECTION], "blocks": blocks}

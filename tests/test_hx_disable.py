"""Defence in depth for user content (issue 11, item 10): every container that shows text
people wrote (ticket messages, article bodies, search snippets, suggestion previews, vote and
satisfaction comments) carries `hx-disable`, so no future template change can turn user text
into htmx behaviour. Escaping stays the first defence; this is the second."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from portal.agent import services as agent_services
from portal.extensions import db
from portal.kb.services import ArticleInput, update_article

MARK = "usertextmark"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class MarkFinder(HTMLParser):
    """Records, for each text node holding MARK, whether an enclosing element has hx-disable."""

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, bool]] = []
        self.found: list[bool] = []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append((tag, any(name == "hx-disable" for name, _ in attrs)))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        if MARK in data and self.stack[-1][0] != "title":  # <title> is no htmx content
            self.found.append(any(disabled for _tag, disabled in self.stack))


def marks_are_disabled(html: str, where: str) -> None:
    finder = MarkFinder()
    finder.feed(html)
    assert finder.found, f"{where}: the user text is not on the page"
    assert all(finder.found), f"{where}: user text outside any hx-disable container"


@pytest.fixture
def marked(app, world):
    """The world's ticket and public article, with user-written text carrying MARK."""
    agent_services.reply(world.ticket, world.agent, f"Agent says {MARK} in a reply",
                         internal=False)
    world.ticket.messages[0].body = f"Customer wrote {MARK} here"
    update_article(world.public_article, ArticleInput(
        title=world.public_article.title,
        body=f"# Steps\n\nPrinter smokes: {MARK} unplug it.\n\n## More\n\nText.",
        section_id=world.public_article.section_id), world.agent,
        expected_version=world.public_article.version)
    db.session.commit()
    from portal.search import process_index_queue

    process_index_queue()
    return world


def test_ticket_messages_are_in_hx_disable_containers(marked):
    owner = marked.client_for(marked.owner)
    ref = marked.ticket.reference
    marks_are_disabled(owner.get(f"/tickets/{ref}").get_data(as_text=True), "ticket page")
    partial = owner.get(f"/tickets/{ref}/updates?after=0&v=stale&s=new",
                        headers={"HX-Request": "true"})
    marks_are_disabled(partial.get_data(as_text=True), "live updates")
    agent = marked.client_for(marked.agent)
    marks_are_disabled(agent.get(f"/agent/tickets/{marked.ticket.id}").get_data(as_text=True),
                       "agent ticket page")


def test_article_bodies_and_search_snippets_are_in_hx_disable_containers(marked):
    visitor = marked.client_for(None)
    article = marked.public_article
    marks_are_disabled(visitor.get(f"/kb/articles/{article.id}-{article.slug}").get_data(
        as_text=True), "article page")
    marks_are_disabled(visitor.get(f"/kb/search?q={MARK}").get_data(as_text=True),
                       "search results")
    suggestions = visitor.get(f"/tickets/new/suggestions?subject={MARK}+printer",
                              headers={"HX-Request": "true"})
    marks_are_disabled(suggestions.get_data(as_text=True), "ticket suggestions")

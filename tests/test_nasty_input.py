"""Hostile and careless input on every page that takes some: never a 500, never unescaped HTML.
"""

from __future__ import annotations

import re

import pytest

HUGE = "99999999999999999999999"
NASTY_VALUES = [
    "x" * 20_000,
    "nul\x00byte",
    "emoji 🔥🧯 printer",
    "\u202eRTL override \u05e9\u05dc\u05d5\u05dd مرحبا",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "[click](javascript:alert(1))",
    "TKT-99999999999999999999",
    "-1",
    HUGE,
    "%s%n{0}{{7*7}}",
    "' OR 1=1 --",
    "",
]
INJECTED = re.compile(r"<script>alert|<img src=x onerror|href=\"javascript:", re.I)


def assert_sane(response, where):
    response.close()
    assert response.status_code < 500, f"{where}: {response.status_code}"
    text = response.get_data(as_text=True)
    assert "Something went wrong on our side" not in text, where
    assert not INJECTED.search(text), f"{where}: unescaped input"


def query_urls(w):
    ref = w.ticket.reference
    return [
        "/kb/search?q={v}", "/kb/search?q=printer&page={v}", "/kb/search?q=printer&category={v}",
        "/kb/search/instant?q={v}", "/kb/search/instant?q=printer&category={v}",
        f"/kb/articles/{w.public_article.id}-x?from_search={{v}}",
        "/tickets/?q={v}", "/tickets/?page={v}", "/tickets/?status={v}", "/tickets/?scope={v}",
        "/tickets/new?follow_up={v}", "/tickets/new/suggestions?subject={v}&description={v}",
        "/tickets/new/suggestions/1?form_key={v}",
        f"/tickets/{ref}/updates?after={{v}}&v={{v}}&s={{v}}", f"/tickets/{ref}/rate?rating={{v}}",
        "/tickets/{v}", "/tickets/{v}/updates", "/tickets/link/{v}",
        "/agent/?q={v}", "/agent/?page={v}", "/agent/?status={v}", "/agent/?sort={v}",
        "/agent/?view={v}", "/agent/?assignee={v}", "/agent/?group={v}", "/agent/?priority={v}",
        f"/agent/tickets/{w.ticket.id}?body={{v}}&canned={{v}}&link={{v}}&kb_q={{v}}",
        f"/agent/tickets/{w.ticket.id}/compose?body={{v}}&kb_q={{v}}",
        "/agent/reports?start={v}&end={v}&group={v}", "/agent/reports/volume.csv?start={v}",
        "/agent/kb/?q={v}&status={v}&visibility={v}", "/agent/kb/report?days={v}",
        "/admin/users?q={v}&page={v}&role={v}",
    ]


@pytest.mark.parametrize("value", NASTY_VALUES, ids=lambda v: repr(v[:12]))
def test_query_strings_never_break_a_page(app, world, value):
    from urllib.parse import quote

    problems = []
    clients = {role: world.client_for(getattr(world, role)) for role in ("owner", "admin")}
    for template in query_urls(world):
        url = template.replace("{v}", quote(value, safe=""))
        client = clients["admin" if template.startswith(("/agent", "/admin")) else "owner"]
        for headers in ({}, {"HX-Request": "true"}):
            response = client.get(url, headers=headers)
            try:
                assert_sane(response, url[:120])
            except AssertionError as exc:
                problems.append(str(exc).splitlines()[0])
    assert not problems, "\n".join(sorted(set(problems)))


@pytest.mark.parametrize("value", NASTY_VALUES[:7], ids=lambda v: repr(v[:12]))
def test_forms_take_nasty_text_without_breaking_or_injecting(app, world, value):
    owner = world.client_for(world.owner)
    agent = world.client_for(world.agent)
    ref, tid = world.ticket.reference, world.ticket.id
    posts = [
        (owner, "/tickets/new", {"subject": value, "description": value, "type": "question"}),
        (owner, "/tickets/new", {"subject": "Check", "description": value, "check": "1"}),
        (owner, f"/tickets/{ref}/reply", {"body": value}),
        (owner, "/tickets/find", {"email": value, "reference": value}),
        (owner, f"/kb/articles/{world.public_article.id}/vote",
         {"helpful": "no", "reason": value, "comment": value}),
        (agent, f"/agent/tickets/{tid}/reply", {"body": value, "internal": "y"}),
        (agent, f"/agent/tickets/{tid}/properties", {"status": value, "tags": value}),
        (agent, f"/agent/tickets/{tid}/merge", {"target": value}),
        (agent, "/agent/bulk", {"ticket": [str(tid), value], "add_tags": value, "status": value}),
        (agent, "/agent/kb/preview", {"body": value}),
        (agent, "/agent/kb/new", {"title": value, "body": value, "section": "1"}),
        (agent, f"/agent/tickets/{tid}/article", {"title": value, "body": value}),
    ]
    problems = []
    for client, url, data in posts:
        for headers in ({}, {"HX-Request": "true"}):
            response = client.post(url, data=data, headers=headers, follow_redirects=True)
            try:
                assert_sane(response, url)
            except AssertionError as exc:
                problems.append(str(exc).splitlines()[0])
    # Whatever was stored shows escaped on the pages that display it.
    for client, url in [(owner, f"/tickets/{ref}"), (owner, "/tickets/"),
                        (agent, f"/agent/tickets/{tid}"), (agent, "/agent/")]:
        try:
            assert_sane(client.get(url), url)
        except AssertionError as exc:
            problems.append(str(exc).splitlines()[0])
    assert not problems, "\n".join(sorted(set(problems)))


@pytest.mark.parametrize("role", ["visitor", "owner", "admin"])
def test_huge_ids_in_every_route_are_a_404_not_a_500(app, world, role):
    """Werkzeug's int converter takes any number of digits; the database does not."""
    from test_access_matrix import build, rules

    client = world.client_for(getattr(world, role, None))
    problems = []
    for rule in rules(app):
        ints = [name for name, conv in rule._converters.items()
                if type(conv).__name__ == "IntegerConverter"]
        if not ints:
            continue
        url = build(app, rule, world, **dict.fromkeys(ints, int(HUGE)))
        for method in sorted(rule.methods & {"GET", "POST"}):
            response = client.open(url, method=method, data={"body": "x"})
            response.close()
            if response.status_code >= 500:
                problems.append(f"{method} {url}: {response.status_code}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("arg", ["page", "section"])
def test_huge_numbers_in_the_agent_article_list(app, world, arg):
    client = world.client_for(world.agent)
    assert_sane(client.get(f"/agent/kb/?{arg}={HUGE}"), arg)


@pytest.mark.parametrize("path", ["?csrf_token=x&ticket_id=5", "/compose?ticket_id=5"])
def test_agent_ticket_redirects_survive_any_query_key(app, world, path):
    client = world.client_for(world.agent)
    assert_sane(client.get(f"/agent/tickets/{world.ticket.id}{path}"), path)


def test_line_breaks_in_a_subject_cannot_inject_email_headers(app, world, mailbox):
    """A crafted post put CR/LF in the subject: the ticket was saved, then its email raised
    ValueError, a 500 for the customer and no confirmation."""
    from sqlalchemy import select

    from portal.extensions import db
    from portal.tickets.models import Ticket

    client = world.client_for(world.owner)
    response = client.post("/tickets/new", data={
        "subject": "Hello\r\nBcc: evil@example.com\x00", "description": "Injected?",
        "type": "question",
    })
    assert response.status_code == 303
    ticket = db.session.scalar(select(Ticket).where(Ticket.subject.like("Hello%")))
    assert ticket.subject == "Hello Bcc: evil@example.com"
    (message,) = mailbox.wait_for(1)
    assert message["X-Envelope-To"] == world.owner.email
    assert message["Bcc"] is None and "Hello Bcc:" in message["Subject"]


def test_send_mail_survives_a_multi_line_subject(app, mailbox):
    """Other callers (agent, CLI) reach send_mail with subjects the form never cleaned."""
    from portal.mail import send_mail

    send_mail("someone@example.com", "Line one\nBcc: evil@example.com", "ticket_links",
              links=[], link_days=1)
    from portal.extensions import db

    db.session.commit()
    (message,) = mailbox.wait_for(1)
    assert message["Subject"] == "Line one Bcc: evil@example.com"
    assert message["X-Envelope-To"] == "someone@example.com"


HOSTILE_MARKDOWN = [
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](  javascript:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "<a href=\"javascript:alert(1)\">raw</a>",
    "![x](javascript:alert(1))",
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "<iframe src=\"https://example.com\"></iframe>",
    "<p style=\"position:fixed\">overlay</p>",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<svg onload=alert(1)>",
    "<form action=\"https://example.com\"><input name=password></form>",
]
DANGEROUS = re.compile(
    r"javascript:|\bon\w+\s*=|<script|<iframe|<svg|<form|style=|data:text", re.I)


def article_body(response) -> str:
    """The rendered Markdown alone (the page around it has forms and icons of its own)."""
    parts = re.split(r'class="[^"]*article-body[^"]*"[^>]*>', response.get_data(as_text=True),
                     maxsplit=1)
    assert len(parts) == 2, "no article body on the page"
    return parts[1].split("</div>", 1)[0]


@pytest.mark.parametrize("body", HOSTILE_MARKDOWN)
def test_article_markdown_cannot_run_script_or_restyle_the_page(app, world, body):
    from portal.kb.models import Article
    from portal.kb.services import ArticleInput, update_article

    article = world.public_article
    client = world.client_for(world.agent)
    preview = client.post("/agent/kb/preview", data={"body": body},
                          headers={"HX-Request": "true", "HX-Target": "preview-pane"})
    assert not DANGEROUS.search(article_body(preview)), body
    from portal.extensions import db

    db.session.expire_all()
    article = db.session.get(Article, article.id)
    update_article(article, ArticleInput(title=article.title, body=f"Intro.\n\n{body}",
                                         section_id=article.section_id), world.agent,
                   expected_version=article.version)
    db.session.commit()
    page = world.client_for(None).get(f"/kb/articles/{article.id}-{article.slug}")
    assert not DANGEROUS.search(article_body(page)), body


@pytest.mark.parametrize("app", [{"RATELIMIT_ENABLED": True,
                                  "VISITOR_TICKET_RATE_LIMIT": "2 per minute"}], indirect=True)
@pytest.mark.parametrize("confirmed,expected", [(False, [303, 303, 429]), (True, [303] * 3)])
def test_an_unconfirmed_account_files_under_the_visitor_limit(app, make_user, auth, client,
                                                               confirmed, expected):
    """Anyone can register with any address and is signed in at once: without this limit an
    unconfirmed account filed without end, each request emailing ten CCs (a spam relay)."""
    user = make_user("customer")
    if not confirmed:
        user.email_confirmed_at = None
        from portal.extensions import db

        db.session.commit()
    auth.login(user.email)
    codes = [client.post("/tickets/new", data={
        "subject": f"Buy cheap watches {i}", "description": "Spam spam spam",
        "cc": "a@example.com, b@example.com", "type": "question",
    }).status_code for i in range(3)]
    assert codes == expected


# str.isdigit() is True for "²" and "①", and int() refuses them: each place that checked
# digits with isdigit() and then called int() was a 500, and a number past 64 bits overflowed
# SQLite. Every id and page number now goes through portal.converters.parse_id.
NUMBER_LOOKALIKES = ["1²", "①", HUGE]


def _number_case(role, method, url, data=None):
    return pytest.param(role, method, url, data, id=f"{method} {url[:40]}")


NUMBER_CASES = [
    _number_case("owner", "GET", "/tickets/TKT-{d}"),
    _number_case("owner", "POST", "/tickets/find",
                        {"email": "owner@sharing.example.com", "reference": "TKT-{d}"}),
    _number_case("agent", "GET", "/agent/?q={d}"),
    _number_case("agent", "GET", "/agent/?assignee={d}"),
    _number_case("agent", "GET", "/agent/reports?group={d}"),
    _number_case("agent", "GET", "/agent/tickets/{tid}?canned={d}"),
    _number_case("agent", "GET", "/agent/tickets/{tid}?link={d}"),
    _number_case("agent", "POST", "/agent/bulk", {"ticket": "{d}", "status": "open"}),
    _number_case("agent", "POST", "/agent/tickets/{tid}/merge", {"target": "{d}"}),
    _number_case("agent", "POST", "/agent/kb/move", {"article_ids": "{d}",
                                                             "section_id": "{sid}"}),
    _number_case("agent", "POST", "/agent/kb/{aid}/edit",
                        {"title": "T", "section_id": "{sid}", "body": "b", "version": "{d}"}),
    _number_case("agent", "GET", "/agent/?page={d}"),
    _number_case("agent", "GET", "/agent/kb/?page={d}&section={d}"),
    _number_case("agent", "GET", "/agent/kb/new?section={d}"),
    _number_case("owner", "GET", "/kb/search?q=password&page={d}&category={d}"),
    _number_case("owner", "GET", "/tickets/?page={d}"),
    _number_case("admin", "GET", "/admin/users?page={d}"),
]


@pytest.mark.parametrize("number", NUMBER_LOOKALIKES)
@pytest.mark.parametrize("role,method,url,data", NUMBER_CASES)
def test_number_lookalikes_and_huge_numbers_are_refused_not_a_500(app, world, role, method,
                                                                   url, data, number):
    def fill(text):
        return text.format(d=number, tid=world.ticket.id, aid=world.public_article.id,
                           sid=world.public_article.section_id)

    client = world.client_for(getattr(world, role))
    data = {k: fill(v) for k, v in (data or {}).items()}
    assert_sane(client.open(fill(url), method=method, data=data), url)


@pytest.mark.parametrize("query", ["zebracode", "zebracode alert", '"zebracode alert"',
                                   "zebracode NOT nothing"])
def test_search_snippets_escape_markup_quoted_in_articles(app, world, query, run_jobs):
    """Article text that quotes HTML (in code) shows as text in every search path's snippets."""
    from portal.extensions import db
    from portal.kb.models import Article
    from portal.kb.services import ArticleInput, update_article

    article = db.session.get(Article, world.public_article.id)
    body = ("Paste `<script>alert(1)</script>` and `<img src=x onerror=alert(1)>` into "
            "zebracode alert box. " + "Filler words. " * 40)
    update_article(article, ArticleInput(title=article.title, body=body,
                                         section_id=article.section_id), world.agent,
                   expected_version=article.version)
    db.session.commit()
    run_jobs()
    client = world.client_for(None)
    shown = []
    for url in (f"/kb/search?q={query}", f"/kb/search/instant?q={query}"):
        response = client.get(url, headers={"HX-Request": "true", "HX-Target": "instant-results"})
        text = response.get_data(as_text=True)
        assert response.status_code == 200
        assert not INJECTED.search(text), url
        assert "<img src=x" not in text and "<script>alert" not in text, url
        shown.append(article.title in text)
    assert any(shown), "the article was never found, so nothing was checked"


@pytest.mark.parametrize("target", [
    "//evil.example.com", "/\\evil.example.com", "https://evil.example.com", "\t//evil.example.com",
    "/\t/evil.example.com", "javascript:alert(1)", "///evil.example.com", "/.//evil.example.com",
    "%2F%2Fevil.example.com", "\\\\evil.example.com",
])
def test_sign_in_never_redirects_off_site(app, world, target):
    from urllib.parse import urljoin, urlsplit

    client = app.test_client()
    response = client.post("/auth/login", data={
        "email": world.owner.email, "password": "correct horse battery", "next": target,
    })
    assert response.status_code in (302, 303)
    landing = urlsplit(urljoin("http://localhost/auth/login", response.location))
    assert landing.scheme == "http" and landing.netloc == "localhost", response.location

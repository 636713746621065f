"""What a screen-reader user needs on every page the URL map serves, as each kind of person:
one h1, a main landmark, a page language, a title, and a name for every form control; and
nothing the Content-Security-Policy would block."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from test_access_matrix import build, rules

CONTROLS = {"input", "select", "textarea"}
UNNAMED_OK = {"hidden", "submit", "button", "reset", "image"}


class Structure(HTMLParser):
    def __init__(self):
        super().__init__()
        self.h1 = 0
        self.main = 0
        self.lang = None
        self.title = False
        self.labels_for: set[str] = set()
        self.controls: list[dict] = []
        self._label_depth = 0
        self.csp_breakers: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        # CSP allows no inline style, script or event handler: they would silently not work.
        if "style" in a or any(name.startswith("on") for name in a):
            self.csp_breakers.append(f"<{tag} {' '.join(a)}>")
        if tag == "script" and not a.get("src"):
            self.csp_breakers.append("<script> without src")
        if tag == "html":
            self.lang = a.get("lang")
        elif tag == "title":
            self.title = True
        elif tag == "h1":
            self.h1 += 1
        elif tag == "main" or a.get("role") == "main":
            self.main += 1
        elif tag == "label":
            self._label_depth += 1
            if a.get("for"):
                self.labels_for.add(a["for"])
        if tag in CONTROLS and (a.get("type") or "").lower() not in UNNAMED_OK:
            self.controls.append({**a, "_tag": tag, "_in_label": self._label_depth > 0})

    def handle_endtag(self, tag):
        if tag == "label":
            self._label_depth = max(0, self._label_depth - 1)

    def unnamed(self) -> list[str]:
        return [
            f"<{c['_tag']} name={c.get('name')!r} id={c.get('id')!r}>" for c in self.controls
            if not (c["_in_label"] or c.get("aria-label") or c.get("aria-labelledby")
                    or c.get("title") or c.get("id") in self.labels_for)
        ]


@pytest.mark.parametrize("role", ["visitor", "owner", "agent", "admin"])
def test_every_page_has_landmarks_a_heading_and_named_controls(app, world, role):
    client = world.client_for(getattr(world, role, None))
    client.get("/")  # the sign-in message
    problems = []
    for rule in rules(app):
        if "GET" not in rule.methods or rule.endpoint.endswith((".download", "reports_csv")):
            continue
        url = build(app, rule, world)
        response = client.get(url)
        response.close()
        if response.status_code != 200 or response.mimetype != "text/html":
            continue
        page = Structure()
        page.feed(response.get_data(as_text=True))
        if page.h1 != 1:
            problems.append(f"{url}: {page.h1} h1 headings")
        if page.main != 1 or not page.lang or not page.title:
            problems.append(f"{url}: main={page.main} lang={page.lang} title={page.title}")
        problems.extend(f"{url}: unlabelled {c}" for c in page.unnamed())
        problems.extend(f"{url}: blocked by CSP {c}" for c in page.csp_breakers)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", ["/new/suggestions?subject=printer", "/{ref}/updates"])
def test_htmx_fragments_opened_without_htmx_lead_to_a_real_page(app, world, path):
    """A bookmark or a JS-off visit to a polling/suggestion URL got a bare, unstyled fragment."""
    client = world.client_for(world.owner)
    response = client.get("/tickets" + path.format(ref=world.ticket.reference))
    assert response.status_code == 302
    page = client.get(response.location)
    assert page.status_code == 200 and "<main" in page.get_data(as_text=True)

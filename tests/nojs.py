"""A browser with JavaScript off, for the test client: read a page's form, fill it, submit it.

Only what HTML itself does: the form's action and method, its hidden fields (CSRF token,
one-time keys), defaults, checked boxes, selected options and the clicked button.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Form:
    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self, page_url: str):
        super().__init__()
        self.page_url = page_url
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._textarea: str | None = None
        self._text = ""
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = Form(a.get("action") or self.page_url, (a.get("method") or "get").lower())
            self.forms.append(self._form)
        if self._form is None or "disabled" in a:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = (a.get("type") or "text").lower()
            if kind in ("submit", "image"):
                self._form.buttons.append((name, a.get("value", "")))
            elif kind not in ("checkbox", "radio", "file", "button") or "checked" in a:
                self._form.fields.append((name, a.get("value", "on" if kind == "checkbox"
                                                     else "")))
        elif tag == "button" and name and (a.get("type") or "submit") == "submit":
            self._form.buttons.append((name, a.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""
        elif tag == "select" and name:
            self._select, self._options = name, []
        elif tag == "option" and self._select:
            self._options.append((a.get("value", ""), "selected" in a))

    def handle_data(self, data):
        if self._textarea:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "textarea" and self._textarea and self._form:
            self._form.fields.append((self._textarea, self._text.removeprefix("\n")))
            self._textarea = None
        elif tag == "select" and self._select and self._form:
            chosen = [v for v, selected in self._options if selected] or [
                v for v, _ in self._options[:1]]
            self._form.fields.extend((self._select, v) for v in chosen)
            self._select = None


def find_form(html: str, page_url: str, action: str) -> Form:
    forms = _FormParser(page_url)
    forms.feed(html)
    matching = [f for f in forms.forms if action in f.action]
    assert matching, f"no form posting to {action!r} on {page_url}"
    return matching[0]


def submit(client, page_url: str, action: str, values: dict | None = None,
           button: tuple[str, str] | None = None, **kwargs):
    """GET `page_url`, fill the form whose action contains `action`, and post it as a browser
    without JavaScript would (no htmx headers), following redirects."""
    page = client.get(page_url)
    assert page.status_code == 200, (page_url, page.status_code)
    form = find_form(page.get_data(as_text=True), page_url, action)
    values = values or {}
    data: dict[str, list[str]] = {}
    for name, value in form.fields:
        if name not in values:
            data.setdefault(name, []).append(value)
    for name, value in values.items():
        data[name] = value if isinstance(value, list) else [value]
    if button is not None:
        assert button in form.buttons, f"no button {button} in {form.buttons}"
        data[button[0]] = [button[1]]
    method = client.post if form.method == "post" else client.get
    return method(form.action, data=data, follow_redirects=True, **kwargs)

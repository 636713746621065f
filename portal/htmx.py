"""One URL, two representations: the full page, or the partial an htmx swap asks for."""

from flask import render_template

from portal.extensions import htmx


def wants_partial(target: str) -> bool:
    """True for an htmx request that swaps `target` (not boosted navigation or history)."""
    return bool(htmx) and not htmx.history_restore_request and htmx.target == target


def render_page_or_partial(page: str, partial: str, target: str, **context) -> str:
    return render_template(partial if wants_partial(target) else page, **context)


def add_vary(response):
    """Responses that depend on htmx request headers must say so, for caches."""
    response.vary.update(("HX-Request", "HX-Target"))
    return response

"""Article Markdown keeps only the classes the renderer writes itself."""

import pytest

from portal.kb.markdown import render_markdown


@pytest.mark.parametrize("raw", [
    '<div class="flash flash-error">Your account is locked</div>',
    '<div class="visually-hidden">hidden words</div>',
    '<code class="button">x</code>',
])
def test_page_classes_in_article_html_are_dropped(raw):
    html = str(render_markdown(f"Intro.\n\n{raw}\n").html)
    assert "class=" not in html, html


def test_the_renderers_own_classes_stay():
    html = str(render_markdown("```python\nx = 1\n```\n\n[TOC]\n\n## One\n").html)
    assert '<code class="language-python">' in html and '<div class="toc">' in html


def test_an_allowed_class_is_kept_and_the_rest_of_the_list_dropped():
    html = str(render_markdown('<div class="toc flash">x</div>').html)
    assert '<div class="toc">' in html


def test_plain_text_reads_as_sentences():
    """Snippets come from this text: no space before punctuation after a link or emphasis,
    and a heading or list item ends its sentence instead of running into the next one."""
    from portal.kb.markdown import plain_text

    text = plain_text(
        "## I didn't get the reset email\n\nThe link works for **one hour**. See"
        " [Account](/kb/1).\n\n- Check spam\n- Ask IT: they can *allow* it\n\n"
        "| Plan | Seats |\n|---|---|\n| Team | 10 |\n"
    )
    assert text == ("I didn't get the reset email. The link works for one hour. See Account. "
                    "Check spam. Ask IT: they can allow it. Plan Seats. Team 10.")
    assert " ." not in text and " ," not in text

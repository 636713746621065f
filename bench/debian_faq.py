"""Debian's FAQ (package debian-faq) split into one article per question section."""

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

FAQ_TEXT = Path("/usr/share/doc/debian/FAQ/debian-faq.en.txt.gz")
_HEADING = re.compile(r"^(\d+(?:\.\d+)+)\. (.*)$")


@dataclass
class FaqSection:
    key: str  # "3.1.2"
    title: str
    body: str


def _paragraphs(lines: list[str]) -> str:
    """Unwrap the text version's fixed-width paragraphs; keep list items on their own lines."""
    out, current = [], []
    for line in lines + [""]:
        stripped = line.strip()
        if not stripped:
            if current:
                out.append(" ".join(current))
                current = []
            continue
        if stripped.startswith("* ") and current:
            out.append(" ".join(current))
            current = []
        current.append(stripped)
    return "\n\n".join(p.replace("* ", "- ", 1) if p.startswith("* ") else p for p in out)


def load_sections(path: Path = FAQ_TEXT) -> list[FaqSection]:
    """Leaf question sections with a body of their own, in document order."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().replace("\xa0", " ").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Chapter 1."))
    raw: list[tuple[str, list[str], list[str]]] = []
    in_title = False
    for line in lines[start:]:
        match = _HEADING.match(line)
        if match:
            raw.append((match.group(1), [match.group(2)], []))
            in_title = True
        elif line.startswith("Chapter ") or line.startswith("Appendix "):
            in_title = False
            raw.append(("", [], []))  # chapter heading: ends the previous section
        elif in_title and line.strip() and not line.startswith(" "):
            raw[-1][1].append(line.strip())
        else:
            in_title = False
            if raw:
                raw[-1][2].append(line)
    sections = []
    for key, title, body in raw:
        text = _paragraphs(body)
        if key and len(text) > 80:
            sections.append(FaqSection(key, " ".join(title), text))
    return sections


if __name__ == "__main__":
    for s in load_sections():
        print(f"{s.key}\t{s.title}\t{len(s.body)}")

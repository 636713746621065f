"""The Python FAQ (package python3-doc: the reStructuredText sources shipped with the HTML
documentation) split into one article per question."""

import re
from dataclasses import dataclass
from pathlib import Path

FAQ_SOURCES = next(
    (p for p in sorted(Path("/usr/share/doc").glob("python3*/html/_sources/faq"))
     if (p / "programming.rst.txt").exists()),
    Path("/usr/share/doc/python3-doc/html/_sources/faq"),
)
FILES = ("general", "programming", "design", "library", "extending", "windows", "gui",
         "installed")
_UNDERLINE = re.compile(r"^([-=#])\1{3,}\s*$")
_ROLE = re.compile(r":[\w:.-]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_LINK = re.compile(r"`([^`<]+?)\s*<[^>]+>`_+")


@dataclass
class FaqSection:
    key: str  # "programming/7": file and question number within it
    title: str
    body: str


def _markdownish(lines: list[str]) -> str:
    """reST to plain paragraphs: roles and links reduced to their text, directives dropped."""
    out: list[str] = []
    for line in lines:
        if line.startswith(".. "):
            continue
        line = _ROLE.sub(r"\1", line)
        line = _LINK.sub(r"\1", line)
        out.append(line.replace("``", "`").rstrip())
    return "\n".join(out).strip()


def load_sections(folder: Path = FAQ_SOURCES) -> list[FaqSection]:
    """Every question (a heading underlined with '-') with its answer, in document order."""
    sections = []
    for name in FILES:
        lines = (folder / f"{name}.rst.txt").read_text(encoding="utf-8").splitlines()
        number = 0
        current: tuple[str, list[str]] | None = None
        for i, line in enumerate(lines):
            underline = i + 1 < len(lines) and _UNDERLINE.match(lines[i + 1])
            if underline and line.strip() and not _UNDERLINE.match(line):
                if current:
                    sections.append(FaqSection(current[0], *_finish(current[1])))
                    current = None
                if underline.group(1) == "-":
                    number += 1
                    current = (f"{name}/{number}", [line.strip()])
                continue
            if _UNDERLINE.match(line):
                continue
            if current:
                current[1].append(line)
        if current:
            sections.append(FaqSection(current[0], *_finish(current[1])))
    return [s for s in sections if len(s.body) > 60]


def _finish(lines: list[str]) -> tuple[str, str]:
    title = _ROLE.sub(r"\1", lines[0]).replace("``", "")
    return title, _markdownish(lines[1:])


if __name__ == "__main__":
    for s in load_sections():
        print(f"{s.key}\t{s.title}\t{len(s.body)}")

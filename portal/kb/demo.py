"""Demo knowledge base content (filled in by the KB work)."""


def seed_kb(author) -> None:
    """Create demo categories, sections and articles."""

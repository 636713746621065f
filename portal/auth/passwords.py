"""The password rule (OWASP ASVS 2.1): long enough, not common, not the person's own name.

No composition rules: any characters, spaces included, and passphrases are welcome. "Common"
is judged by zxcvbn, which ships its own frequency lists of leaked passwords, English words,
names and keyboard patterns and runs locally (no password ever leaves the server). A password
must need at least 10**8 guesses by its estimate (score 3 of 4), the level it calls "safely
unguessable" for an online attack; our scrypt hashes slow an offline one down a lot more.
"""

from __future__ import annotations

import re

MIN_LENGTH = 12
MAX_LENGTH = 128
MIN_SCORE = 3
# Raise it when the rule gets stricter: every password is then judged again at its next sign-in.
RULE_VERSION = 1
# zxcvbn's matching is quadratic in the length; past this its estimate does not change anyway.
_ESTIMATE_CHARS = 72
HINT = (f"At least {MIN_LENGTH} characters, not a common password, and not your name or email. "
        "Spaces are fine: a few unrelated words work well.")
_WORD = re.compile(r"[^\W_]{3,}")


def _personal_words(name: str, email: str) -> set[str]:
    """The person's name parts and the words of their email's local part (3+ letters)."""
    local = email.lower().rpartition("@")[0]
    return set(_WORD.findall(name.lower())) | set(_WORD.findall(local))


def password_problem(password: str, *, name: str = "", email: str = "") -> str | None:
    """Why `password` is refused for this person, in words they can act on; None if fine."""
    if len(password) < MIN_LENGTH:
        return (f"Use at least {MIN_LENGTH} characters. A few unrelated words make a password "
                "that is long and easy to remember.")
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    lowered = password.lower()
    if (email and email.lower() in lowered) or any(
            word in lowered for word in _personal_words(name, email)):
        return "Leave your name and email address out of your password."
    # Imported here: its lists take 12 MB of every web worker that imported it, for the few
    # requests that set a password (a sign-in judges a password once: auth.services).
    from zxcvbn import zxcvbn

    result = zxcvbn(password[:_ESTIMATE_CHARS], user_inputs=sorted(_personal_words(name, email)))
    if result["score"] < MIN_SCORE:
        warning = result["feedback"]["warning"]
        hint = warning.rstrip(".") + ". " if warning else ""
        return (f"This password is too easy to guess. {hint}Add another word or two; uncommon "
                "words are better.")
    return None

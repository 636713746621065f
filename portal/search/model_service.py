"""The query model in one process per host: gunicorn's web workers ask it over a Unix socket.

Loaded in each worker, or before the fork and shared, the model still counted in every
worker's resident memory (onnxruntime, tokenizers and the int8 session: ~40 MB of each
worker's RSS) and left onnxruntime in processes it cannot be torn down in. Here one process
loads it (`embeddings.load_query_encoder`, exactly as in-process) and answers "encode these
texts" with float32 vectors, the same bits as in-process. A web worker keeps its query cache
in front of it (`semantic.embed_query`), so the socket is crossed once per new text.

- The socket lives in a private folder (mode 0700, the user's own) and is named by a digest
  of what decides the vectors: this checkout, the model path, the runtime and the prepared
  model's folder. Instances of the portal on one host share a service only when all of
  those are the same; never over TCP.
- Protocol, both ways a 4-byte big-endian length then the body. Request: one byte of
  operation, b"E" (encode queries: a count, then each text as a length and UTF-8), b"A" (the
  same with the article encoder, float32 numpy: a known issue's text published by an agent;
  loaded in the service on first use, never in a worker) or b"S" (status). The service runs
  BLAS on one thread, as a worker encodes a query: bulk embedding stays in the jobs worker.
  Answer: one byte, 0 (done) or 1 (the model is unavailable, then the reason as UTF-8);
  done is followed by rows as a count and little-endian float32 (encode) or JSON (status).
- One service per socket: it holds an exclusive lock on `<socket>.lock` for its whole life
  (the kernel drops it when the process dies, even by SIGKILL). Whoever finds the socket
  dead (a web worker, the master at start) and that lock free starts a new one; a second
  one started meanwhile finds the lock taken and leaves. So a killed service comes back
  without an operator, from the first search that misses it, and until it is back searches
  rank by keywords (as while the model loads). A client waits at most
  SEMANTIC_MODEL_SERVICE_TIMEOUT for an answer: a stuck service costs one request that
  long, then keywords for RETRY_SECONDS.
- It serves as long as its owner (gunicorn's master) lives: it watches the owner's pidfd,
  so stopping gunicorn, even with SIGKILL, stops it, whichever process started it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import select
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from portal.search.embeddings import DIMENSIONS, ModelUnavailable

log = logging.getLogger(__name__)

PROTOCOL = 1
ENCODE, ENCODE_ARTICLES, STATUS = b"E", b"A", b"S"
DONE, UNAVAILABLE = 0, 1
MAX_FRAME = 16 * 1024 * 1024  # a request or answer larger than this is refused
RETRY_SECONDS = 1.0  # how long a worker ranks by keywords before asking a missing service again
ARTICLE_TIMEOUT = 60.0  # seconds an article encoding may take (the first loads that model)
STUCK_RETRY_SECONDS = 10.0  # ... and one that did not answer in time (each try costs a timeout)
_LENGTH = struct.Struct("!I")
ROOT = Path(__file__).resolve().parent.parent.parent


class ServiceUnavailable(ModelUnavailable):
    """The service did not answer (not running, killed, stuck, or refusing the request)."""


# --- where the service listens ----------------------------------------------------------
def private_folder() -> Path:
    """$XDG_RUNTIME_DIR (or the temporary folder)/portal-<uid>, mode 0700 and ours, or refused."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    folder = base / f"portal-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = folder.lstat()
    if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.getuid():
        raise ServiceUnavailable(f"{folder} is not a folder of this user's own")
    if info.st_mode & 0o077:
        os.chmod(folder, 0o700)
    return folder


def socket_path(model_path: str, runtime: str, cache: str) -> Path:
    """The service's socket for this model: one per checkout, model, runtime and prepared
    folder (the runtime's version included: it names the prepared form)."""
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        runtime += "-" + importlib.metadata.version("onnxruntime")
    identity = json.dumps([PROTOCOL, str(ROOT), str(Path(model_path).resolve()) if model_path
                           else "", runtime, str(Path(cache).resolve()) if cache else ""])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
    return private_folder() / f"query-model-{digest}.sock"


# --- framing -----------------------------------------------------------------------------
def _send(sock: socket.socket, body: bytes) -> None:
    sock.sendall(_LENGTH.pack(len(body)) + body)


def _receive(sock: socket.socket) -> bytes | None:
    """One frame's body; None when the peer closed between frames."""
    header = _exactly(sock, _LENGTH.size, eof_ok=True)
    if header is None:
        return None
    (length,) = _LENGTH.unpack(header)
    if length > MAX_FRAME:
        raise ConnectionError(f"frame of {length} bytes refused")
    return bytes(_exactly(sock, length))


def _exactly(sock: socket.socket, size: int, eof_ok: bool = False) -> bytearray | None:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            if eof_ok and got == 0:
                return None
            raise ConnectionError("the peer closed the connection mid-frame")
        got += n
    return buffer


def encode_request(texts: list[str], operation: bytes = ENCODE) -> bytes:
    parts = [operation, _LENGTH.pack(len(texts))]
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        parts += [_LENGTH.pack(len(data)), data]
    return b"".join(parts)


def decode_texts(body: bytes) -> list[str]:
    (count,), at = _LENGTH.unpack_from(body, 1), 1 + _LENGTH.size
    texts = []
    for _ in range(count):
        (length,) = _LENGTH.unpack_from(body, at)
        at += _LENGTH.size
        if at + length > len(body):
            raise ValueError("a text runs past the end of the request")
        texts.append(body[at:at + length].decode("utf-8", "surrogatepass"))
        at += length
    return texts


# --- the service process -----------------------------------------------------------------
class _Handler(socketserver.BaseRequestHandler):
    """One connection (a web worker's), served until it closes: requests one at a time."""

    def handle(self) -> None:
        service: Service = self.server.service  # type: ignore[attr-defined]
        while True:
            try:
                body = _receive(self.request)
            except (OSError, ConnectionError):
                return
            if body is None:
                return
            try:
                answer = service.answer(body)
            except Exception as exc:  # a malformed request: say so, keep serving the others
                log.warning("refused a request: %s", exc)
                answer = bytes([UNAVAILABLE]) + f"bad request: {exc}".encode()
            try:
                _send(self.request, answer)
            except OSError:
                return


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True  # a connection left open never keeps the process from stopping
    request_queue_size = 64


class Service:
    """The loaded encoder (or why there is none) and the answers to requests."""

    def __init__(self, model_path: str, runtime: str, cache: str) -> None:
        from portal.search.embeddings import failure, load_query_encoder

        self.encoder = load_query_encoder(model_path or None, runtime, cache or None)
        self.reason = "" if self.encoder is not None else (
            failure(model_path or None) or "The model did not load.")
        self.description = type(self.encoder).__name__ if self.encoder is not None else ""
        self.model_path = model_path

    def answer(self, body: bytes) -> bytes:
        from portal.search.embeddings import failure, load_encoder

        operation = body[:1]
        if operation == STATUS:
            status = {"pid": os.getpid(), "available": self.encoder is not None,
                      "reason": self.reason, "encoder": self.description}
            return bytes([DONE]) + json.dumps(status).encode()
        if operation not in (ENCODE, ENCODE_ARTICLES):
            raise ValueError(f"unknown operation {operation!r}")
        encoder = self.encoder if operation == ENCODE else load_encoder(self.model_path or None)
        if encoder is None:
            return bytes([UNAVAILABLE]) + (
                self.reason or failure(self.model_path or None) or "no model").encode()
        vectors = encoder.encode(decode_texts(body))
        return (bytes([DONE]) + _LENGTH.pack(len(vectors))
                + np.ascontiguousarray(vectors, dtype="<f4").tobytes())


def _wait_for_exit(pid: int) -> None:
    """Return when process `pid` has ended: its pidfd becomes readable (no pid reuse), or,
    without pidfds, it is polled every second."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            except PermissionError:
                pass
            time.sleep(1.0)
    try:
        select.select([fd], [], [])
    finally:
        os.close(fd)


_LOCK_ATTEMPTS = 20


def serve(path: Path, owner: int, model_path: str, runtime: str, cache: str) -> int:
    """Run the service on `path` until `owner` ends or a SIGTERM; 0 also when another one
    already serves there."""
    lock = open(f"{path}.lock", "a")  # noqa: SIM115 - held for the whole life of the process
    for attempt in range(_LOCK_ATTEMPTS):  # a client's probe holds it for a moment
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt == _LOCK_ATTEMPTS - 1:
                log.info("another query-model service serves %s", path)
                return 0
            time.sleep(0.05)
    # One BLAS thread for the whole process, as a web worker encodes a query
    # (`single_threaded_blas`): its matrices are small, and the cores are the workers'.
    threadpool_limits(limits=1, user_api="blas")
    started = time.perf_counter()
    service = Service(model_path, runtime, cache)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    server = _Server(str(partial), _Handler)
    server.service = service  # type: ignore[attr-defined]
    os.chmod(partial, 0o600)
    os.replace(partial, path)  # a stale socket of a killed service is replaced at once
    bound = path.stat().st_ino
    log.info("query-model service %d ready on %s in %.2f s (%s)", os.getpid(), path,
             time.perf_counter() - started, service.description or service.reason)

    def stop(*_args) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=lambda: (_wait_for_exit(owner), stop()), name="owner-watch",
                     daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.5)  # how soon a stop is seen
    finally:
        server.server_close()
        with contextlib.suppress(OSError):
            if path.stat().st_ino == bound:
                path.unlink()
    log.info("query-model service %d stopped", os.getpid())
    return 0


# --- the client, in each web worker ------------------------------------------------------
class ServiceClient:
    """A worker's connection to the service for one model; stands in for the encoder.

    `encoder()` is itself while the service answers and has the model, else None (the
    caller ranks by keywords). Inherited across a fork, it reconnects in the child."""

    def __init__(self, model_path: str, runtime: str, cache: str, owner: int,
                 timeout: float) -> None:
        self.args = (model_path, runtime, cache)
        self.path = socket_path(*self.args)
        self.owner = owner
        self.timeout = timeout
        self.reason = "The model service is starting."
        self.service_pid: int | None = None
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._pid = os.getpid()
        self._available = False
        self._retry_at = 0.0
        self._started: subprocess.Popen | None = None
        self._crashes, self._start_at = 0, 0.0

    # the encoder's interface (semantic.embed_query)
    def encode(self, texts: list[str], operation: bytes = ENCODE) -> np.ndarray:
        with self._lock:
            self._own_connection()
            if self._sock is None or not self._available:
                raise ServiceUnavailable(self.reason)
            request = encode_request(list(texts), operation)
            if len(request) > MAX_FRAME:  # the service would refuse it: keep the connection
                raise ServiceUnavailable(f"{len(request)} bytes of text is too much to encode")
            try:
                # Articles (a known issue's text, rare) may wait for the article model to
                # load in the service, and come in batches: they get longer.
                self._sock.settimeout(self.timeout if operation == ENCODE else ARTICLE_TIMEOUT)
                body = self._ask(request)
            except (OSError, ConnectionError, ValueError) as exc:
                self._drop(f"The model service stopped answering ({exc or type(exc).__name__}).",
                           retry=_retry_after(exc))
                raise ServiceUnavailable(self.reason) from exc
            if body[0] != DONE:
                raise ServiceUnavailable(body[1:].decode(errors="replace"))
            (rows,) = _LENGTH.unpack_from(body, 1)
            data = bytearray(body[1 + _LENGTH.size:])
            if len(data) != rows * DIMENSIONS * 4 or rows != len(texts):
                self._drop("The model service answered with a malformed frame.")
                raise ServiceUnavailable(self.reason)
            return np.frombuffer(data, dtype="<f4").reshape(rows, DIMENSIONS).astype(
                np.float32, copy=False)

    def encoder(self) -> ServiceClient | None:
        with self._lock:
            self._own_connection()
            if self._sock is None and time.monotonic() >= self._retry_at:
                self._connect()
            return self if self._sock is not None and self._available else None

    def article_encoder(self) -> ArticleEncoder | None:
        """The article encoder (float32 numpy) in the service, while it answers."""
        return ArticleEncoder(self) if self.encoder() is not None else None

    def state(self) -> tuple[bool, str]:
        """(whether queries are ranked by meaning now, why not)."""
        available = self.encoder() is not None
        return available, self.reason

    # lifecycle
    def start(self) -> None:
        """Start the service unless one runs (or starts) for this socket; does not wait."""
        with self._lock:
            self._own_connection()
            if self._sock is None:
                self._start_unless_running()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the service answers (model loaded, or known to be unavailable)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                self._own_connection()
                if self._sock is None:
                    self._connect()
                if self._sock is not None:
                    return True
                gone = self._started is not None and self._started.poll() is not None
            if gone and not self._locked():
                return False  # the one this process started died, and none replaced it
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def disconnect(self) -> None:
        """Close this process's connection (the master's, before it forks)."""
        with self._lock:
            self._drop(self.reason, retry=0.0)

    def stop_service(self, timeout: float = 10.0) -> None:
        """Stop the service (tests): SIGTERM, then wait until its lock is free."""
        self.wait_ready(timeout)
        pid = self.service_pid
        self.disconnect()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self._locked() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._started is not None:
            self._started.wait(timeout)

    # internals (under self._lock)
    def _own_connection(self) -> None:
        if self._pid != os.getpid():  # a forked child: the connection is its parent's
            if self._sock is not None:
                self._sock.close()
            self._sock, self._pid, self._retry_at = None, os.getpid(), 0.0
            self._started, self._crashes, self._start_at = None, 0, 0.0  # not our child

    def _ask(self, request: bytes) -> bytes:
        _send(self._sock, request)
        body = _receive(self._sock)
        if not body:
            raise ConnectionError("the service closed the connection")
        return body

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
            self._sock = sock
            body = self._ask(STATUS)
            if body[0] != DONE:
                raise ConnectionError(body[1:].decode(errors="replace"))
            status = json.loads(body[1:])
        except (OSError, ConnectionError, ValueError) as exc:
            self._sock = None
            sock.close()
            missing = isinstance(exc, (FileNotFoundError, ConnectionRefusedError))
            self._drop("The model service is starting." if missing and self._locked()
                       else f"The model service is not answering ({exc or type(exc).__name__}).",
                       retry=_retry_after(exc))
            if missing:
                self._start_unless_running()
            return
        self.service_pid, self._crashes = status["pid"], 0
        self._available = bool(status["available"])
        self.reason = status["reason"] or ""
        if not self._available:  # asked again later: its reason stays until a restart
            self._drop(self.reason, retry=RETRY_SECONDS * 10)

    def _drop(self, reason: str, retry: float = RETRY_SECONDS) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock, self._available, self.reason = None, False, reason
        self._retry_at = time.monotonic() + retry

    def _locked(self) -> bool:
        """Whether a service holds the socket's lock (runs, or is loading the model)."""
        try:
            with open(f"{self.path}.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False

    def _start_unless_running(self) -> None:
        if self._started is not None:
            code = self._started.poll()
            if code is None:
                return  # the one this process started is still loading
            if code != 0 and self.service_pid != self._started.pid:  # died before serving
                self._crashes += 1
                self._start_at = time.monotonic() + min(2.0 ** self._crashes, 60.0)
            self._started = None
        if time.monotonic() < self._start_at or self._locked():
            return  # a service that cannot start is tried again less and less often
        model_path, runtime, cache = self.args
        log.info("starting the query-model service on %s", self.path)
        self._started = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-c", _BOOTSTRAP, "--socket", str(self.path),
             "--owner", str(self.owner or os.getpid()), "--model-path", model_path,
             "--runtime", runtime, "--cache", cache],
            cwd=ROOT, stdin=subprocess.DEVNULL, start_new_session=True)


# The service imports this module and `embeddings` only, which import nothing else of the
# portal: the packages `portal` and `portal.search` are entered as bare folders, without their
# __init__ (the app factory, and the whole search domain: Flask, SQLAlchemy, Whoosh, +54 MB).
_BOOTSTRAP = f"""import sys, types
for name, folder in (("portal", {str(ROOT / "portal")!r}),
                     ("portal.search", {str(ROOT / "portal" / "search")!r})):
    package = types.ModuleType(name)
    package.__path__ = [folder]
    sys.modules[name] = package
from {__name__} import main
sys.exit(main())
"""


class ArticleEncoder:
    """The service's article encoder, with the encoder's interface (`encode`)."""

    def __init__(self, service: ServiceClient) -> None:
        self.service = service

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.service.encode(texts, ENCODE_ARTICLES)


def _retry_after(exc: Exception) -> float:
    return STUCK_RETRY_SECONDS if isinstance(exc, TimeoutError) else RETRY_SECONDS


_clients: dict[tuple, ServiceClient] = {}
_clients_lock = threading.Lock()


def client(model_path: str, runtime: str, cache: str, owner: int = 0,
           timeout: float = 1.0) -> ServiceClient:
    """This process's client for the service of this model (one per model and owner)."""
    key = (model_path, runtime, cache, owner)
    with _clients_lock:
        found = _clients.get(key)
        if found is None:
            found = _clients[key] = ServiceClient(model_path, runtime, cache, owner, timeout)
        found.timeout = timeout
        return found


def disconnect_all() -> None:
    for each in list(_clients.values()):
        each.disconnect()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--owner", required=True, type=int, help="serve while this pid lives")
    parser.add_argument("--model-path", default="")
    parser.add_argument("--runtime", default="onnx")
    parser.add_argument("--cache", default="")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s [%(process)d] [model-service] %(levelname)s "
                               "%(name)s: %(message)s")
    return serve(args.socket, args.owner, args.model_path, args.runtime, args.cache)


if __name__ == "__main__":
    sys.exit(main())

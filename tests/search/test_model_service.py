"""The query-model service: a real process on a real Unix socket, as gunicorn's workers use it."""

import os
import signal
import stat
import time

import pytest

from portal.search import model_service, semantic
from portal.search.embeddings import (
    installed_model_zip,
    load_encoder,
    load_query_encoder,
    single_threaded_blas,
)

SENTENCES = ["How do I reset my password?", "The printer is not printing anything",
             "Refund for a duplicate charge on my card", "Kernel panic after the upgrade",
             "é, ü, \u2603 and a longer question " * 20, ""]

# A model path of its own: a socket of its own (the digest names the model), never the one
# of a gunicorn running from this checkout.
MODEL = str(installed_model_zip())
SERVICE = pytest.mark.parametrize("app", [{
    "SEMANTIC_SEARCH": True, "SEMANTIC_MODEL_SERVICE": True, "SEMANTIC_MODEL_PATH": MODEL,
    "SEMANTIC_QUERY_RUNTIME": "onnx", "SEMANTIC_MODEL_SERVICE_TIMEOUT": 5.0}], indirect=True)


@pytest.fixture
def corpus(make_article):
    return {
        "refund": make_article(
            "Refunds for duplicate charges",
            "If a payment was taken twice, we return the extra charge to your card within "
            "five working days. No action is needed on your side."),
        "printer": make_article(
            "Printer shows offline",
            "Check the cable or Wi-Fi connection, then restart the print spooler service."),
    }


@pytest.fixture
def service(app):
    """The app's service, started and answering; stopped (and reaped) after the test."""
    client = semantic._service()
    client.start()
    assert client.wait_ready(120), client.reason
    yield client
    client.stop_service()


def _killed(client) -> int:
    pid = client.service_pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while client._locked() and time.monotonic() < deadline:  # the kernel let go of its lock
        time.sleep(0.02)
    return pid


@SERVICE
def test_the_service_answers_the_vectors_of_the_model_in_process_bit_for_bit(app, service):
    model_path, runtime, cache = semantic._query_model()
    local = load_query_encoder(model_path, runtime, cache).encode(SENTENCES)
    remote = service.encoder().encode(SENTENCES)
    assert remote.dtype == local.dtype and remote.shape == (len(SENTENCES), 384)
    assert remote.tobytes() == local.tobytes()
    # The socket is the user's own, in a folder no one else may enter.
    assert stat.S_IMODE(service.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(service.path.stat().st_mode) == 0o600
    assert semantic.status()["mode"] == "hybrid"


@SERVICE
def test_article_vectors_come_from_the_service_too(app, service):
    """A worker that embeds (an agent publishing a known issue) never loads the model."""
    remote = semantic.encoder()
    assert isinstance(remote, model_service.ArticleEncoder)
    with single_threaded_blas():  # as the service runs it
        local = load_encoder(MODEL).encode(SENTENCES)
    assert remote.encode(SENTENCES).tobytes() == local.tobytes()


@SERVICE
def test_a_second_start_leaves_the_running_service_alone(app, service):
    first = service.service_pid
    other = model_service.ServiceClient(*semantic._query_model(), owner=os.getpid(), timeout=5)
    other.start()  # the lock is held: starts nothing
    try:
        assert other.wait_ready(10) and other.service_pid == first
        assert other._started is None
    finally:
        other.disconnect()


@SERVICE
def test_a_killed_service_leaves_keyword_results_then_comes_back(app, service, client, corpus):
    vague = "I got billed two times for the same thing"  # no keyword of the refund article
    page = client.get("/kb/search", query_string={"q": vague})
    assert page.status_code == 200 and corpus["refund"].title in page.text
    killed = _killed(service)

    during = "got billed two times"  # the first search to miss the service; none of its words
    page = client.get("/kb/search", query_string={"q": during})
    assert page.status_code == 200 and corpus["refund"].title not in page.text
    page = client.get("/kb/search", query_string={"q": "printer offline after a restart"})
    assert page.status_code == 200
    assert corpus["printer"].title in page.text  # found by its words
    assert semantic.status()["mode"] == "keyword-only"
    assert semantic.query_encoder() is None  # keywords until the next try, no waiting

    time.sleep(model_service.RETRY_SECONDS)
    semantic.query_encoder()  # the first search after that starts a new service
    assert service.wait_ready(120), service.reason
    assert service.service_pid != killed
    assert semantic.status()["mode"] == "hybrid"
    # The keyword-only answer given while the service was gone was not kept as hybrid.
    page = client.get("/kb/search", query_string={"q": during})
    assert page.status_code == 200 and corpus["refund"].title in page.text


@SERVICE
def test_a_stuck_service_costs_one_timeout_then_keywords(app, service, client, corpus):
    service.timeout = 0.3
    os.kill(service.service_pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        page = client.get("/kb/search", query_string={"q": "spooler keeps stopping"})
        first = time.monotonic() - started
        assert page.status_code == 200 and corpus["printer"].title in page.text
        started = time.monotonic()
        page = client.get("/kb/search", query_string={"q": "spooler stopped again"})
        assert page.status_code == 200 and corpus["printer"].title in page.text
        assert time.monotonic() - started < first  # no second wait
        assert semantic.status()["mode"] == "keyword-only"
    finally:
        os.kill(service.service_pid, signal.SIGCONT)


@SERVICE
def test_the_service_stops_with_its_owner(app):
    """Whoever started it, the service ends with the process it serves (gunicorn's master),
    even killed, and takes its socket with it."""
    import subprocess
    import sys

    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # noqa: S603
    try:
        client = model_service.ServiceClient(*semantic._query_model(), owner=owner.pid,
                                             timeout=5)
        client.start()
        assert client.wait_ready(120), client.reason
        assert client.encoder() is not None
        client.disconnect()
        owner.kill()
        owner.wait()
        assert client._started.wait(10) == 0
        assert not client._locked()
        assert not client.path.exists()
    finally:
        owner.kill()
        owner.wait()


@SERVICE
def test_a_malformed_request_is_refused_and_the_service_keeps_serving(app, service):
    import socket
    import struct

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(service.path))
        body = model_service.ENCODE + struct.pack("!I", 3)  # three texts announced, none sent
        sock.sendall(struct.pack("!I", len(body)) + body)
        length = struct.unpack("!I", sock.recv(4))[0]
        answer = sock.recv(length)
        assert answer[0] == model_service.UNAVAILABLE and b"bad request" in answer
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(service.path))
        sock.sendall(struct.pack("!I", model_service.MAX_FRAME + 1))  # too large: hung up on
        assert sock.recv(4) == b""
    assert service.encoder().encode(["still there?"]).shape == (1, 384)

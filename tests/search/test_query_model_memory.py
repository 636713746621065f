"""What a web worker holds in memory: the query model's weights mapped from a file the
host's processes share, and no library only other processes need."""

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from portal.search.embeddings import (
    PREPARED_WEIGHTS,
    QueryEncoder,
    installed_model_zip,
    installed_query_model,
    prepared_query_model,
)

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = ["How do I reset my password?", "printer offline after the update",
             "Refunds: when is my money back? " * 12]


def mapped_files() -> set[str]:
    """The files this process has memory-mapped (Linux)."""
    with open("/proc/self/maps") as maps:
        return {line.split(None, 5)[5].strip() for line in maps if len(line.split()) > 5}


def test_the_query_model_runs_from_its_prepared_form_with_weights_mapped(tmp_path):
    installed = QueryEncoder.from_zips(installed_model_zip())
    prepared = QueryEncoder.from_zips(installed_model_zip(), tmp_path)
    [folder] = tmp_path.iterdir()
    weights = folder / PREPARED_WEIGHTS
    assert weights.stat().st_size > 80_000_000  # the float32 weights onnxruntime computes
    assert str(weights) in mapped_files()  # read in place, not copied into the process
    assert np.array_equal(prepared.encode(QUESTIONS), installed.encode(QUESTIONS))
    # A second process (or load) uses the folder as it is.
    made = weights.stat().st_mtime_ns
    QueryEncoder.from_zips(installed_model_zip(), tmp_path)
    assert weights.stat().st_mtime_ns == made


def test_damaged_prepared_weights_are_not_used(tmp_path, caplog):
    source = installed_query_model()
    folder = prepared_query_model(source, tmp_path).parent
    assert prepared_query_model(source, tmp_path) == folder / "model.onnx"
    with open(folder / PREPARED_WEIGHTS, "r+b") as weights:
        weights.seek(4096)
        weights.write(b"\xff" * 64)
    with caplog.at_level(logging.WARNING):
        model = prepared_query_model(source, tmp_path)
    assert model == source  # the installed model, run as before
    assert "weights do not match their digest" in caplog.text


def test_the_web_app_does_not_import_what_only_mail_and_password_changes_use(tmp_path):
    code = ("import sys; from tests.conftest import make_app; from pathlib import Path; "
            f"make_app(Path({str(tmp_path)!r})); "
            "print(sorted(m for m in ('zxcvbn', 'inscriptis', 'lxml') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,  # noqa: S603
                            text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr

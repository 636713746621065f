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
    load_encoder,
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
    # int8 kept: 12 MB of word table and 13 MB of matrices and scales, no float32 copy
    # (the float32 form was 90 MB).
    assert 20_000_000 < weights.stat().st_size < 30_000_000
    assert str(weights) in mapped_files()  # read in place, not copied into the process
    cosines = (prepared.encode(QUESTIONS) * installed.encode(QUESTIONS)).sum(axis=1)
    assert cosines.min() > 0.999, cosines
    # ... and as close to the float32 model the articles are embedded with.
    reference = load_encoder().encode(QUESTIONS)
    assert (prepared.encode(QUESTIONS) * reference).sum(axis=1).min() > 0.9985
    # A second process (or load) uses the folder as it is.
    made = weights.stat().st_mtime_ns
    QueryEncoder.from_zips(installed_model_zip(), tmp_path)
    assert weights.stat().st_mtime_ns == made


def test_the_prepared_graph_keeps_the_int8_weights_for_onnxruntime(tmp_path):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(prepared_query_model(installed_query_model(), tmp_path)),
                      load_external_data=False)
    ops = [node.op_type for node in model.graph.node]
    # Per layer: query, key and value in one product, then output, up and down; int8.
    assert ops.count("MatMulNBits") == 24
    widths = [next(a.i for a in node.attribute if a.name == "N")
              for node in model.graph.node if node.op_type == "MatMulNBits"]
    assert widths.count(3 * 384) == 6
    # Attention and GELU each one fused operator, GELU in its exact (erf) form.
    assert ops.count("MultiHeadAttention") == ops.count("Gelu") == 6
    assert not {"Erf", "Softmax", "Transpose", "FastGelu"} & set(ops)
    big_float = [init.name for init in model.graph.initializer
                 if init.data_type == onnx.TensorProto.FLOAT
                 and np.prod(init.dims, dtype=np.int64) > 600_000]
    assert big_float == []  # no float32 matrix or word table left to hold in memory


def anonymous_memory_of_loading(model_folder: str) -> float:
    """MB of a fresh process's own (anonymous) memory that loading the query model adds."""
    code = (
        "import sys; from pathlib import Path\n"
        "from portal.search.embeddings import QueryEncoder, installed_model_zip\n"
        "def anon():\n"
        "    return next(int(line.split()[1]) for line in open('/proc/self/status')\n"
        "                if line.startswith('RssAnon')) / 1024\n"
        "import onnxruntime, tokenizers\n"
        "before = anon()\n"
        "model = QueryEncoder.from_zips(installed_model_zip(),\n"
        "                               Path(sys.argv[1]) if sys.argv[1] else None)\n"
        "model.encode(['How do I reset my password?'])\n"
        "import gc, ctypes; gc.collect(); ctypes.CDLL('libc.so.6').malloc_trim(0)\n"
        "print(anon() - before)\n")
    result = subprocess.run([sys.executable, "-c", code, model_folder], cwd=ROOT,  # noqa: S603
                            capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def test_a_process_holds_a_quarter_of_the_memory_for_the_prepared_model(tmp_path):
    prepared_query_model(installed_query_model(), tmp_path)  # made once, as on a host
    installed = anonymous_memory_of_loading("")
    prepared = anonymous_memory_of_loading(str(tmp_path))
    assert installed > 80  # the float32 weights, re-packed for the matrix kernels
    assert prepared < 35, (prepared, installed)  # the int8 matrices, re-packed (25 MB)


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

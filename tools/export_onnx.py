#!/usr/bin/env python3
"""Export an infiniscope model to ONNX, and check the export against the CPU reference.

The graph takes one chunk of S segments of N tokens (N = segment_len; docs/DESIGN.md
§1.2) and the memory left by the segments before it, and returns each token's loss
and the memory after the chunk, so a text of any length runs as a loop over chunks
that carries M and z:

  inputs   tokens        int64   [S·N]            token ids of the chunk
           targets       int64   [S·N]            the next token of each position
           memory_m      float32 [L, H, d, d]     M of every layer and head (zeros at the start)
           memory_z      float32 [L, H, d, 1]     z likewise
  outputs  nll           float32 [S·N]            −log p(target), in nats
           memory_m_out  float32 [L, H, d, d]     M after the chunk's writes
           memory_z_out  float32 [L, H, d, 1]

Every op follows docs/DESIGN.md §1 and src/reference/ one function per concept;
weights are float32 initializers (an f16 file is widened exactly, as Rust does).
Segments are unrolled: local attention is per segment and the memory walks them in
order. The first segment needs no flag: with M = 0 and z = 0 the read is
0 / max(0, ε) = 0 exactly, the contract's "A_mem = 0, no 0/0".

Usage:
  python3 tools/export_onnx.py models/infini-tiny --out infini-tiny.onnx [--segments 32]
  python3 tools/export_onnx.py models/infini-tiny --out infini-tiny.onnx \\
      --check samples/paradise-lost.txt [--json losses.json]

--check tokenizes the text as infiniscope does, runs it chunk by chunk in onnxruntime
and prints per-segment losses in the shape of `infiniscope eval --json`. The text's
last segment is short and has no target for its last token (src/segment.rs), so the
last chunk runs in a graph built for its exact segment lengths (nothing padded); the
missing target is fed as 0 and its loss dropped.
Needs: pip install onnx onnxruntime numpy tokenizers
"""
import argparse
import json
import math
import struct
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
MEMORY_EPS = 1e-6  # src/reference/ops.rs MEMORY_EPS: the read's denominator clamp


# ---------------------------------------------------------------- the model folder
def load_config(folder):
    return json.loads((folder / "config.json").read_text())


def load_weights(folder):
    """model.safetensors as float32 arrays: 8-byte header size, JSON header, data."""
    raw = (folder / "model.safetensors").read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])
    data = raw[8 + size:]
    dtypes = {"F32": np.float32, "F16": np.float16}
    weights = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]])
        weights[name] = array.reshape(info["shape"]).astype(np.float32)
    return weights


# ---------------------------------------------------------------- graph building
class Graph:
    """Nodes and initializers of one ONNX graph; `op` returns its output's name."""

    def __init__(self):
        self.nodes, self.initializers, self.consts, self.count = [], [], {}, 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def op(self, kind, *inputs, **attrs):
        out = self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out

    def weight(self, name, array):
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def const(self, value, dtype=np.float32):
        """A small constant, stored once however often it is used."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self.consts:
            self.consts[key] = self.weight(self.name("const"), array)
        return self.consts[key]

    def ints(self, *values):
        return self.const(list(values), np.int64)

    def rows(self, x, start, end, axis):
        return self.op("Slice", x, self.ints(start), self.ints(end), self.ints(axis))


# ---------------------------------------------------------------- ops (docs/DESIGN.md §1)
def rmsnorm(g, x, w, eps):
    """x / √(mean(x²) + ε) · w, row by row."""
    mean_square = g.op("ReduceMean", g.op("Mul", x, x), axes=[-1], keepdims=1)
    root = g.op("Sqrt", g.op("Add", mean_square, g.const(eps)))
    return g.op("Mul", g.op("Div", x, root), w)


def sigma(g, x):
    """σ(x) = ELU(x) + 1, written as x + 1 or eʸ: ONNX's Elu then + 1 would round
    eˣ − 1 + 1 to 0 below x ≈ −17, where the reference keeps eˣ > 0."""
    positive = g.op("Greater", x, g.const(0.0))
    return g.op("Where", positive, g.op("Add", x, g.const(1.0)),
                g.op("Exp", g.op("Min", x, g.const(0.0))))


def rope_tables(n, d, base):
    """RoPE's cos and sin per position 0..n and pair i (frequency base^(−2i/d)),
    the angle formed in f32 as src/reference/ops.rs `rotations` does."""
    i = np.arange(d // 2, dtype=np.float32)
    frequencies = np.power(np.float32(base), -(2 * i) / np.float32(d)).astype(np.float32)
    angles = (np.arange(n, dtype=np.float32)[:, None] * frequencies[None, :]).astype(np.float32)
    return np.cos(angles.astype(np.float64)).astype(np.float32), \
        np.sin(angles.astype(np.float64)).astype(np.float32)


def rope(g, x, n, d, base):
    """Rotate-half RoPE of x [H, n, d]: dimension i pairs with i + d/2; positions
    restart at 0 in every segment."""
    cos, sin = (g.const(t) for t in rope_tables(n, d, base))
    half = d // 2
    a, b = g.rows(x, 0, half, 2), g.rows(x, half, d, 2)
    first = g.op("Sub", g.op("Mul", a, cos), g.op("Mul", b, sin))
    second = g.op("Add", g.op("Mul", a, sin), g.op("Mul", b, cos))
    return g.op("Concat", first, second, axis=2)


def local_attention(g, q, k, v, n, d, base):
    """A_dot = softmax(mask(RoPE(Q) RoPE(K)ᵀ / √d)) V, causal within the segment."""
    q, k = rope(g, q, n, d, base), rope(g, k, n, d, base)
    scores = g.op("MatMul", q, g.op("Transpose", k, perm=[0, 2, 1]))
    scores = g.op("Mul", scores, g.const(1.0 / np.sqrt(np.float32(d))))
    # Position t sees positions 0..t: −∞ above the diagonal.
    mask = np.triu(np.full((n, n), -np.inf, dtype=np.float32), k=1)
    probs = g.op("Softmax", g.op("Add", scores, g.const(mask)), axis=-1)
    return g.op("MatMul", probs, v)


def memory_read(g, sq, m, z):
    """σ(Q) M / max(σ(Q) z, ε) for σ(Q) [H, n, d], M [H, d, d], z [H, d, 1]."""
    denominator = g.op("Max", g.op("MatMul", sq, z), g.const(MEMORY_EPS))
    return g.op("Div", g.op("MatMul", sq, m), denominator)


def memory_write(g, sk, v, m, z, rule):
    """M += σ(K)ᵀ · surprise, z += Σ_t σ(K_t). The surprise is V (linear) or what the
    memory does not yet return for the segment's own keys (delta)."""
    surprise = v if rule == "linear" else g.op("Sub", v, memory_read(g, sk, m, z))
    m = g.op("Add", m, g.op("MatMul", g.op("Transpose", sk, perm=[0, 2, 1]), surprise))
    column_sums = g.op("ReduceSum", sk, g.ints(1), keepdims=1)  # [H, 1, d]
    z = g.op("Add", z, g.op("Transpose", column_sums, perm=[0, 2, 1]))
    return m, z


def heads(g, x, h, d):
    """[T, H·d] → [H, T, d]: each head's columns, as a batch."""
    return g.op("Transpose", g.op("Reshape", x, g.ints(-1, h, d)), perm=[1, 0, 2])


def attention_block(g, c, l, x, m, z, lengths, rule, memory_on):
    """A = g·A_mem + (1 − g)·A_dot per head over RMSNorm(x), then · W_O. Each segment
    reads the memory the ones before it left, then writes into it."""
    h, d, base = c["n_heads"], c["head_dim"], c["rope_base"]
    p = f"layers.{l}."
    xn = rmsnorm(g, x, p + "attn_norm", c["norm_eps"])
    q, k, v = (heads(g, g.op("MatMul", xn, p + w), h, d) for w in ("wq", "wk", "wv"))
    gate = g.op("Reshape", g.op("Sigmoid", p + "beta"), g.ints(h, 1, 1))  # g = sigmoid(β)
    local_share = g.op("Sub", g.const(1.0), gate)
    outputs, start = [], 0
    for n in lengths:
        qs, ks, vs = (g.rows(t, start, start + n, 1) for t in (q, k, v))
        a = g.op("Mul", local_share, local_attention(g, qs, ks, vs, n, d, base))
        if memory_on:  # memory off: the read returns 0 (§1.4), the write still happens
            a_mem = memory_read(g, sigma(g, qs), m, z)  # Q without RoPE
            a = g.op("Add", g.op("Mul", gate, a_mem), a)
        m, z = memory_write(g, sigma(g, ks), vs, m, z, rule)
        outputs.append(a)
        start += n
    a = g.op("Concat", *outputs, axis=1) if len(outputs) > 1 else outputs[0]
    a = g.op("Reshape", g.op("Transpose", a, perm=[1, 0, 2]), g.ints(-1, h * d))
    return g.op("MatMul", a, p + "wo"), m, z


def mlp_block(g, c, l, x):
    """SwiGLU over RMSNorm(x): (silu(x·W_gate) ⊙ x·W_up)·W_down."""
    p = f"layers.{l}."
    xn = rmsnorm(g, x, p + "mlp_norm", c["norm_eps"])
    gate, up = g.op("MatMul", xn, p + "w_gate"), g.op("MatMul", xn, p + "w_up")
    silu = g.op("Mul", gate, g.op("Sigmoid", gate))
    return g.op("MatMul", g.op("Mul", silu, up), p + "w_down")


def nll(g, c, x, targets):
    """Cross-entropy of RMSNorm(x)·Eᵀ (tied embedding) against each target."""
    xn = rmsnorm(g, x, "final_norm", c["norm_eps"])
    logits = g.op("Gemm", xn, "embed", transB=1)
    log_probs = g.op("LogSoftmax", logits, axis=-1)
    picked = g.op("GatherElements", log_probs, g.op("Unsqueeze", targets, g.ints(1)), axis=1)
    return g.op("Neg", g.op("Squeeze", picked, g.ints(1)))


# ---------------------------------------------------------------- one chunk's graph
def chunk_graph(c, weights, lengths, rule=None, memory_on=True):
    """The ONNX model of one chunk whose segments have these lengths (N each for an
    exported chunk); `rule` and `memory_on` default to the model as trained."""
    rule = rule or c["update_rule"]
    L, H, d = c["n_layers"], c["n_heads"], c["head_dim"]
    rows = sum(lengths)
    g = Graph()
    for name, array in weights.items():
        g.weight(name, array)
    x = g.op("Gather", "embed", "tokens", axis=0)
    m_out, z_out = [], []
    for l in range(L):
        layer = g.ints(l)  # [1]: keeps the layer axis, dropped by Squeeze
        m = g.op("Squeeze", g.op("Gather", "memory_m", layer, axis=0), g.ints(0))
        z = g.op("Squeeze", g.op("Gather", "memory_z", layer, axis=0), g.ints(0))
        attention, m, z = attention_block(g, c, l, x, m, z, lengths, rule, memory_on)
        x = g.op("Add", x, attention)
        x = g.op("Add", x, mlp_block(g, c, l, x))
        m_out.append(g.op("Unsqueeze", m, g.ints(0)))
        z_out.append(g.op("Unsqueeze", z, g.ints(0)))
    loss = nll(g, c, x, "targets")
    g.nodes += [helper.make_node("Identity", [loss], ["nll"]),
                helper.make_node("Concat", m_out, ["memory_m_out"], axis=0),
                helper.make_node("Concat", z_out, ["memory_z_out"], axis=0)]
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    graph = helper.make_graph(
        g.nodes, "infiniscope_chunk",
        [helper.make_tensor_value_info("tokens", i64, [rows]),
         helper.make_tensor_value_info("targets", i64, [rows]),
         helper.make_tensor_value_info("memory_m", f32, [L, H, d, d]),
         helper.make_tensor_value_info("memory_z", f32, [L, H, d, 1])],
        [helper.make_tensor_value_info("nll", f32, [rows]),
         helper.make_tensor_value_info("memory_m_out", f32, [L, H, d, d]),
         helper.make_tensor_value_info("memory_z_out", f32, [L, H, d, 1])],
        g.initializers)
    opsets = [helper.make_opsetid("", OPSET)]
    # The oldest IR version that holds these opsets, not the onnx package's newest: a
    # newer one is refused by runtimes that read the opset well (onnxruntime-web 1.30
    # reads IR versions up to 13; onnx 1.23 writes 14).
    model = helper.make_model(graph, opset_imports=opsets, producer_name="infiniscope tools/export_onnx.py",
                              ir_version=helper.find_min_ir_version_for(opsets))
    model.doc_string = (f"one chunk of segments of lengths {list(lengths)}; {rule} rule, "
                        f"memory {'on' if memory_on else 'off'}")
    onnx.checker.check_model(model)
    return model


# ---------------------------------------------------------------- --check
def tokenize(folder, text_path):
    """As src/tokenizer.rs: strict UTF-8, newlines untouched, no special tokens."""
    from tokenizers import Tokenizer
    text = text_path.read_bytes().decode("utf-8")
    return Tokenizer.from_file(str(folder / "tokenizer.json")).encode(
        text, add_special_tokens=False).ids


def segments(tokens, n):
    """src/segment.rs: segments of n tokens while the token after is known, then the
    rest (1..n tokens) with one target fewer than tokens. (index, tokens, targets)."""
    out, start = [], 0
    while len(tokens) - start > n:
        out.append((len(out), tokens[start:start + n], tokens[start + 1:start + n + 1]))
        start += n
    if start < len(tokens):
        out.append((len(out), tokens[start:], tokens[start + 1:]))
    return out


def check(folder, c, weights, exported, text_path, s, rule, memory_on, threads):
    """Runs the text chunk by chunk in onnxruntime, carrying M and z; returns a report
    shaped like `infiniscope eval --json` (tokens, loss, segments)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    sessions = {}

    def session(lengths):
        if lengths not in sessions:
            model = exported if lengths == (c["segment_len"],) * s else \
                chunk_graph(c, weights, lengths, rule, memory_on).SerializeToString()
            sessions[lengths] = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        return sessions[lengths]

    tokens = tokenize(folder, text_path)
    if len(tokens) < 2:
        sys.exit(f"{text_path} has fewer than two tokens")
    all_segments = segments(tokens, c["segment_len"])
    L, H, d = c["n_layers"], c["n_heads"], c["head_dim"]
    m = np.zeros((L, H, d, d), np.float32)
    z = np.zeros((L, H, d, 1), np.float32)
    report, seconds = [], 0.0
    for first in range(0, len(all_segments), s):
        chunk = all_segments[first:first + s]
        lengths = tuple(len(t) for _, t, _ in chunk)
        sess = session(lengths)
        ids = np.array([t for _, seg, _ in chunk for t in seg], np.int64)
        # A missing target (the text's last token) is fed as 0; its loss is dropped below.
        targets = np.array([t for _, seg, tg in chunk for t in tg + [0] * (len(seg) - len(tg))],
                           np.int64)
        start = time.perf_counter()
        losses, m, z = sess.run(None, {"tokens": ids, "targets": targets,
                                       "memory_m": m, "memory_z": z})
        seconds += time.perf_counter() - start
        row = 0
        for index, seg, tg in chunk:
            loss = float(losses[row:row + len(tg)].mean()) if len(tg) else None
            report.append({"index": index, "tokens": len(seg), "targets": len(tg), "loss": loss})
            row += len(seg)
    scored = [(r["loss"], r["targets"]) for r in report if r["loss"] is not None]
    mean = sum(l * t for l, t in scored) / (len(tokens) - 1)
    return {"model": str(folder), "text": str(text_path), "update_rule": rule,
            "memory": memory_on, "segments_per_chunk": s, "tokens": len(tokens),
            "loss": mean, "tokens_per_second": len(tokens) / seconds, "segments": report}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="model folder (config.json, model.safetensors, tokenizer.json)")
    parser.add_argument("--out", type=Path, help="where to write the chunk graph (.onnx)")
    parser.add_argument("--segments", type=int, default=32, help="segments per chunk, S (default 32)")
    parser.add_argument("--rule", choices=["linear", "delta"], help="update rule (default: the model's)")
    parser.add_argument("--memory", choices=["on", "off"], default="on",
                        help="off: the memory read returns 0 (docs/DESIGN.md §1.4)")
    parser.add_argument("--check", type=Path, metavar="TEXT_FILE",
                        help="run this text in onnxruntime and print per-segment losses")
    parser.add_argument("--json", type=Path, help="with --check: also write the report here")
    parser.add_argument("--threads", type=int, default=0,
                        help="with --check: onnxruntime's intra-op threads (default: its own choice)")
    args = parser.parse_args()
    if args.out is None and args.check is None:
        parser.error("give --out, --check or both")
    if args.segments < 1:
        parser.error("--segments must be at least 1")
    c, weights = load_config(args.model), load_weights(args.model)
    if c.get("key_shift") or c.get("query_shift"):
        sys.exit(f"{args.model}: a shift model (beyond the paper); the export covers the paper's model only")
    rule, memory_on = args.rule or c["update_rule"], args.memory == "on"
    lengths = (c["segment_len"],) * args.segments
    exported = chunk_graph(c, weights, lengths, rule, memory_on).SerializeToString()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(exported)
        print(f"wrote {args.out}: {args.segments} segments × {c['segment_len']} tokens per chunk, "
              f"{len(exported) / 2**20:.1f} MiB", file=sys.stderr)
        exported = str(args.out)  # the check reads the file back, as a user of it would
    if args.check:
        report = check(args.model, c, weights, exported, args.check, args.segments, rule, memory_on,
                       args.threads)
        for r in report["segments"]:
            loss = "-" if r["loss"] is None else f"{r['loss']:.6f}"
            print(f"segment {r['index']:>5} {r['tokens']:>4} tokens  loss {loss}")
        print(f"overall: loss {report['loss']:.6f} nats over {report['tokens'] - 1} predicted tokens; "
              f"onnxruntime {report['tokens_per_second']:.0f} tokens/s")
        if args.json:
            # JSON has no NaN: a broken graph's non-finite loss is written as text.
            text = lambda loss: loss if loss is None or math.isfinite(loss) else str(loss)
            segments = [{**r, "loss": text(r["loss"])} for r in report["segments"]]
            args.json.write_text(json.dumps({**report, "loss": text(report["loss"]), "segments": segments},
                                            indent=2))


if __name__ == "__main__":
    main()

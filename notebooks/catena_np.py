"""Catena checkpoints, prepared datasets and the CoLM forward pass in plain numpy.

Written from chain-model/MODEL.md (checkpoint format and math) and data-pipeline/README.md (manifest,
shards, tokenizer.json), not from the Java code, so the notebooks check Catena rather than repeat it.

    ckpt = load_checkpoint(path)             # step directory or checkpoint root with `latest`
    logits = forward(ckpt, tokens, k)        # [logits of scale 1, ..., scale k], each [B, T, V]
    ds = load_dataset(path)                  # manifest.json, shards, tokenizer
"""
import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

# ----------------------------------------------------------------------------------------------
# Checkpoints (MODEL.md, "Checkpoint directory")
# ----------------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    dir: str
    meta: dict      # model.json
    config: dict    # model.json["config"]
    params: dict    # tensor name -> float32 array

    @property
    def chains(self):
        return list(self.config["chains"])

    def param_count(self, k):
        """Parameters the k-chain sub-model uses (tensors of chains < k)."""
        return sum(int(np.prod(t["shape"])) for t in self.meta["tensors"] if t["chain"] < k)


def resolve_checkpoint(path):
    """A step directory (holds model.json) or a checkpoint root whose `latest` file names one."""
    if os.path.isfile(os.path.join(path, "model.json")):
        return path
    latest = os.path.join(path, "latest")
    if os.path.isfile(latest):
        with open(latest) as f:
            name = f.read().strip()
        step = name if os.path.isabs(name) else os.path.join(path, name)
        if not os.path.isfile(os.path.join(step, "model.json")):
            raise FileNotFoundError(f"{latest} names {name!r} but {step}/model.json does not exist")
        return step
    raise FileNotFoundError(f"{path}: no model.json and no `latest` file; set CATENA_CKPT to a checkpoint "
                            f"root or step directory (e.g. demo-out/ckpt-3chains after `bin/catena demo`)")


def load_checkpoint(path):
    step = resolve_checkpoint(path)
    with open(os.path.join(step, "model.json")) as f:
        meta = json.load(f)
    if meta.get("format") != "catena-checkpoint" or meta.get("format_version") != 1:
        raise ValueError(f"{step}/model.json: expected format catena-checkpoint version 1, found "
                         f"{meta.get('format')!r} version {meta.get('format_version')!r}")
    params = {}
    for t in meta["tensors"]:
        f = os.path.join(step, "params", t["name"] + ".npy")
        a = np.load(f, allow_pickle=False)
        if a.dtype != np.dtype("<f4") or list(a.shape) != list(t["shape"]):
            raise ValueError(f"{f}: expected float32 {t['shape']}, found {a.dtype} {list(a.shape)}")
        params[t["name"]] = a
    return Checkpoint(step, meta, meta["config"], params)


# ----------------------------------------------------------------------------------------------
# Forward (MODEL.md, "Forward"): scale k reads the tensors of chains 0..k-1 only
# ----------------------------------------------------------------------------------------------


def _norm(x, P, name, cfg, widths, k):
    """Per-chain LayerNorm/RMSNorm over the first k chain slices of x."""
    eps, out, off = cfg["norm_eps"], [], 0
    for i in range(k):
        xi = x[..., off:off + widths[i]]
        off += widths[i]
        if cfg["norm"] == "layernorm":
            mu = xi.mean(-1, keepdims=True)
            var = ((xi - mu) ** 2).mean(-1, keepdims=True)
            y = (xi - mu) / np.sqrt(var + eps) * P[f"{name}.c{i}.gain"] + P[f"{name}.c{i}.bias"]
        else:
            y = xi / np.sqrt((xi * xi).mean(-1, keepdims=True) + eps) * P[f"{name}.c{i}.gain"]
        out.append(y)
    return np.concatenate(out, -1)


def _chain_linear(x, P, name, in_prefix, k, bias):
    """y_i = x[:, :in_prefix[i]] W_i^T + b_i for chains i < k, concatenated chain-major."""
    out = []
    for i in range(k):
        y = x[..., :in_prefix[i]] @ P[f"{name}.c{i}.weight"].T
        out.append(y + P[f"{name}.c{i}.bias"] if bias else y)
    return np.concatenate(out, -1)


def _rope(x, theta):
    """Rotate-half RoPE on [B, H, T, hd] at positions 0..T-1."""
    T, hd = x.shape[-2], x.shape[-1]
    h = hd // 2
    inv = theta ** (-2.0 * np.arange(h) / hd)
    a = np.arange(T)[:, None] * inv[None, :]
    cos, sin = np.cos(a).astype(x.dtype), np.sin(a).astype(x.dtype)
    x1, x2 = x[..., :h], x[..., h:]
    return np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


def _heads(x, hd):
    B, T, W = x.shape
    return x.reshape(B, T, W // hd, hd).transpose(0, 2, 1, 3)


def forward(ckpt, tokens, k=None, dtype=np.float32):
    """Logits of scales 1..k for tokens [B, T] (list of [B, T, V]); k defaults to every chain.
    dtype float64 gives a reference to compare float32 engines against."""
    cfg = ckpt.config
    chains, hd = cfg["chains"], cfg["head_dim"]
    k = len(chains) if k is None else k
    if not 1 <= k <= len(chains):
        raise ValueError(f"k must be in 1..{len(chains)}, got {k}")
    P = {n: a.astype(dtype, copy=False) for n, a in ckpt.params.items()}
    widths = [hd * c for c in chains]
    prefix = list(np.cumsum(widths))
    ffn = [int(round(cfg["ffn_mult"] * hd * c)) for c in chains]
    ffn_prefix = list(np.cumsum(ffn))
    bias, air = cfg["bias"], cfg["variant"] == "colm-air"
    heads = sum(chains[:k])
    B, T = tokens.shape

    x = np.concatenate([P[f"embed.c{i}"][tokens] for i in range(k)], -1)
    causal = np.triu(np.ones((T, T), dtype=bool), 1)
    for l in range(cfg["layers"]):
        p = f"layers.{l}"
        h = _norm(x, P, f"{p}.norm1", cfg, widths, k)
        q = _heads(_chain_linear(h, P, f"{p}.attn.q", prefix, k, bias), hd)
        if air:   # K/V: dense from chain 0, kv head j % kv_heads serves query head j
            def kv(n):
                y = h[..., :widths[0]] @ P[f"{p}.attn.{n}.c0.weight"].T
                y = _heads(y + P[f"{p}.attn.{n}.c0.bias"] if bias else y, hd)
                return y[:, np.arange(heads) % cfg["kv_heads"]]
            kk, vv = kv("k"), kv("v")
        else:
            kk = _heads(_chain_linear(h, P, f"{p}.attn.k", prefix, k, bias), hd)
            vv = _heads(_chain_linear(h, P, f"{p}.attn.v", prefix, k, bias), hd)
        q, kk = _rope(q, cfg["rope_theta"]), _rope(kk, cfg["rope_theta"])
        s = q @ kk.transpose(0, 1, 3, 2) / np.sqrt(hd).astype(dtype)
        s = np.where(causal, -np.inf, s)
        s = np.exp(s - s.max(-1, keepdims=True))
        att = (s / s.sum(-1, keepdims=True)) @ vv
        att = att.transpose(0, 2, 1, 3).reshape(B, T, heads * hd)
        x = x + _chain_linear(att, P, f"{p}.attn.o", prefix, k, bias)

        h = _norm(x, P, f"{p}.norm2", cfg, widths, k)
        up = _chain_linear(h, P, f"{p}.ffn.up", prefix, k, bias)
        if cfg["activation"] == "gelu":
            c = np.sqrt(2.0 / np.pi).astype(dtype)
            a = 0.5 * up * (1.0 + np.tanh(c * (up + 0.044715 * up ** 3)))
        else:
            g = _chain_linear(h, P, f"{p}.ffn.gate", prefix, k, bias)
            a = g / (1.0 + np.exp(-g)) * up
        x = x + _chain_linear(a, P, f"{p}.ffn.down", ffn_prefix, k, bias)

    h = _norm(x, P, "norm_f", cfg, widths, k)
    logits, acc, off = [], None, 0
    for i in range(k):
        part = h[..., off:off + widths[i]] @ P[f"head.c{i}"]
        off += widths[i]
        acc = part if acc is None else acc + part
        logits.append(acc)
    return logits


def next_token_nll(logits, targets):
    """Mean cross-entropy of logits [B, T, V] against targets [B, T] (float64)."""
    z = logits.astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    lse = np.log(np.exp(z).sum(-1))
    picked = np.take_along_axis(z, targets[..., None], -1)[..., 0]
    return float((lse - picked).mean())


# ----------------------------------------------------------------------------------------------
# Prepared datasets (data-pipeline/README.md)
# ----------------------------------------------------------------------------------------------

SHARD_MAGIC = b"CATENATK"
SHARD_HEADER = 32


@dataclass
class Dataset:
    dir: str
    manifest: dict
    vocab: list           # id -> bytes of the token (special tokens: their text)
    special: dict         # id -> special token text

    def shards(self, split=None):
        return [s for s in self.manifest["shards"] if split is None or s["split"] == split]

    def read_shard(self, shard, verify_crc=False):
        """Token ids of one shard (uint16/uint32), after checking its header against the manifest."""
        path = os.path.join(self.dir, shard["path"])
        with open(path, "rb") as f:
            head = f.read(SHARD_HEADER)
        if head[:8] != SHARD_MAGIC:
            raise ValueError(f"{path}: magic {head[:8]!r}, expected {SHARD_MAGIC!r}")
        version, width = np.frombuffer(head, "<i4", 2, 8)
        count = int(np.frombuffer(head, "<i8", 1, 16)[0])
        crc = int(np.frombuffer(head, "<u4", 1, 24)[0])
        if version not in (1, 2) or width not in (2, 4):
            raise ValueError(f"{path}: header version {version}, dtype bytes {width}; this reader knows versions 1 and 2, "
                             f"dtype bytes 2 or 4")
        if count != shard["tokens"] or crc != int(shard["crc32c"], 16):
            raise ValueError(f"{path}: header says {count} tokens, CRC32C {crc:08x}; the manifest says "
                             f"{shard['tokens']}, {shard['crc32c']}")
        # version 2 adds a block-checksum trailer after the payload: read exactly the payload
        tokens = np.fromfile(path, dtype="<u2" if width == 2 else "<u4", count=count, offset=SHARD_HEADER)
        if len(tokens) != count:
            raise ValueError(f"{path}: {len(tokens)} tokens on disk, header says {count}")
        if verify_crc and crc32c(tokens.tobytes()) != crc:
            raise ValueError(f"{path}: payload CRC32C differs from the header's {crc:08x}: the shard is corrupt")
        return tokens

    def decode(self, ids):
        return b"".join(self.vocab[i] for i in ids)


def bytes_to_unicode():
    """GPT-2's byte <-> printable character table used by byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def load_dataset(path):
    """A dataset directory (holding manifest.json) or a manifest file."""
    mfile = path if path.endswith(".json") else os.path.join(path, "manifest.json")
    if not os.path.isfile(mfile):
        raise FileNotFoundError(f"{mfile} does not exist; set CATENA_DATA to the --out of `catena prepare`")
    root = os.path.dirname(mfile)
    if os.path.basename(root) == "manifests":
        root = os.path.dirname(root)
    with open(mfile) as f:
        manifest = json.load(f)
    if manifest.get("format") != "catena-token-shards/1":
        raise ValueError(f"{mfile}: format {manifest.get('format')!r}, expected 'catena-token-shards/1'")
    with open(os.path.join(root, manifest["tokenizer"]["path"]), encoding="utf-8") as f:
        tok = json.load(f)
    char_to_byte = {c: b for b, c in bytes_to_unicode().items()}
    size = manifest["tokenizer"]["vocabSize"]
    vocab = [None] * size
    for s, i in tok["model"]["vocab"].items():
        vocab[i] = bytes(char_to_byte[c] for c in s)
    special = {a["id"]: a["content"] for a in tok.get("added_tokens", [])}
    for i, s in special.items():
        vocab[i] = s.encode("utf-8")
    missing = [i for i, v in enumerate(vocab) if v is None]
    if missing:
        raise ValueError(f"tokenizer.json has no token for id(s) {missing[:5]} of vocabSize {size}")
    return Dataset(root, manifest, vocab, special)


def doc_hash(text_bytes):
    """First 8 bytes (big-endian) of SHA-256: the hash behind dedup and the train/val split."""
    return int.from_bytes(hashlib.sha256(text_bytes).digest()[:8], "big")


def is_val(doc_bytes, seed, val_ppm):
    """The manifest's split rule: remainderUnsigned(splitmix64(hash ^ seed), 1e6) < valPpm."""
    m = (1 << 64) - 1
    z = (doc_hash(doc_bytes) ^ (seed & m)) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    z ^= z >> 31
    return z % 1_000_000 < val_ppm


_CRC32C = None


def crc32c(data):
    """CRC32C (Castagnoli), as the shard headers use; table-driven, fine for test-sized shards."""
    global _CRC32C
    if _CRC32C is None:
        t = []
        for n in range(256):
            c = n
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            t.append(c)
        _CRC32C = t
    crc, t = 0xFFFFFFFF, _CRC32C
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ----------------------------------------------------------------------------------------------
# Data versions (retrain runs): which dataset manifest version trained which steps
# ----------------------------------------------------------------------------------------------


def read_checkpoint_info(path):
    """`info` of a checkpoint's model.json (no tensors read); {} when there is no checkpoint at path."""
    try:
        step = resolve_checkpoint(path)
    except FileNotFoundError:
        return {}
    with open(os.path.join(step, "model.json")) as f:
        return json.load(f).get("info") or {}


def data_version_spans(steps=None, versions=None, history=None):
    """[(manifest_version, first_step, last_step)] in step order.

    From the train records' `manifest_version` (steps and versions: equal-length sequences; a span runs from the
    first to the last record of a version) when given, else from a checkpoint's `info.history` (retrain: one entry
    per run with `manifest_version`, `from_step`, `to_step`; the run trained steps from_step+1..to_step).
    [] when neither is recorded."""
    spans = []
    if steps is not None and versions is not None and len(steps):
        for s, v in zip(steps, versions):
            if v is None or (isinstance(v, float) and np.isnan(v)):
                continue
            v = int(v)
            if spans and spans[-1][0] == v:
                spans[-1][2] = int(s)
            else:
                spans.append([v, int(s), int(s)])
        if spans:
            return [tuple(x) for x in spans]
    for h in history or []:
        spans.append((int(h["manifest_version"]), int(h["from_step"]) + 1, int(h["to_step"])))
    return spans

"""A CoLM / CoLM-Air forward pass in numpy (float32), from a `catena export` directory.

The math is chain-model/MODEL.md's; the tensor names and config fields are docs/EXPORT.md's. Scale k uses
chains 0..k-1 only: every tensor of chain i reads only chains <= i, so the first k chains are a model.
"""

import json
import math
import os

import numpy as np

from . import safetensors_numpy
from .tokenizer import Tokenizer

FORMAT = "catena-colm-export"
FORMAT_VERSION = 1


class Config:
    """config.json of an export, checked for consistency."""

    def __init__(self, doc, where="config.json"):
        if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{where}: format {doc.get('format')!r} version {doc.get('format_version')!r}; expected {FORMAT!r} "
                             f"version {FORMAT_VERSION} (written by `catena export`)")
        self.doc = doc
        self.variant = doc["model_type"]
        if self.variant not in ("colm", "colm-air"):
            raise ValueError(f"{where}: model_type is {self.variant!r}, expected colm or colm-air")
        self.vocab_size = int(doc["vocab_size"])
        self.head_dim = int(doc["head_dim"])
        self.chains = [int(c) for c in doc["chains"]]
        self.num_layers = int(doc["num_layers"])
        self.kv_heads = int(doc["kv_heads"])
        self.ffn_per_head = int(doc["ffn_per_head"])
        self.activation = doc["activation"]
        self.norm = doc["norm"]
        self.norm_eps = float(doc["norm_eps"])
        self.rope_theta = float(doc["rope_theta"])
        self.max_seq_len = int(doc["max_seq_len"])
        self.bias = bool(doc["bias"])
        self.eos_token_id = doc.get("eos_token_id")
        if self.head_dim * sum(self.chains) != int(doc["d_model"]):
            raise ValueError(f"{where}: d_model {doc['d_model']} != head_dim {self.head_dim} * sum(chains {self.chains})")
        if self.activation not in ("gelu", "swiglu") or self.norm not in ("layernorm", "rmsnorm"):
            raise ValueError(f"{where}: activation {self.activation!r} / norm {self.norm!r}; expected gelu|swiglu, layernorm|rmsnorm")
        if self.air and (self.kv_heads < 1 or any(c % self.kv_heads for c in self.chains)):
            raise ValueError(f"{where}: colm-air needs kv_heads >= 1 dividing every chain's heads, got {self.kv_heads}, {self.chains}")

    @property
    def air(self):
        return self.variant == "colm-air"

    @property
    def num_chains(self):
        return len(self.chains)

    def width(self, i):
        return self.head_dim * self.chains[i]

    def prefix_width(self, k):
        return self.head_dim * sum(self.chains[:k])


class Model:
    """An exported CoLM: `logits(ids, chains=k)`, `generate(prompt, ...)`."""

    def __init__(self, config, tensors, tokenizer=None):
        self.config = config
        self.tokenizer = tokenizer
        self.tensors = {n: np.asarray(t, dtype=np.float32) for n, t in tensors.items()}
        self._check_tensors()
        self._inv_freq = self.config.rope_theta ** (-2.0 * np.arange(self.config.head_dim // 2) / self.config.head_dim)

    def expected_shapes(self):
        """name -> shape of every tensor docs/EXPORT.md lists for this config."""
        c = self.config
        shapes = {}

        def linear(name, out, inp, bias=c.bias):
            shapes[name + ".weight"] = (out, inp)
            if bias:
                shapes[name + ".bias"] = (out,)

        def norm(name, d):
            shapes[name + ".weight"] = (d,)
            if c.norm == "layernorm":
                shapes[name + ".bias"] = (d,)

        for i in range(c.num_chains):
            d, p = c.width(i), c.prefix_width(i + 1)
            f, pf = c.ffn_per_head * c.chains[i], c.ffn_per_head * sum(c.chains[:i + 1])
            shapes[f"embed.chain.{i}.weight"] = (c.vocab_size, d)
            for l in range(c.num_layers):
                pre, ch = f"layers.{l}.", f".chain.{i}"
                norm(pre + "norm1" + ch, d)
                linear(pre + "attn.q" + ch, d, p)
                if not c.air:
                    linear(pre + "attn.k" + ch, d, p)
                    linear(pre + "attn.v" + ch, d, p)
                elif i == 0:
                    linear(pre + "attn.k" + ch, c.kv_heads * c.head_dim, d)
                    linear(pre + "attn.v" + ch, c.kv_heads * c.head_dim, d)
                linear(pre + "attn.o" + ch, d, p)
                norm(pre + "norm2" + ch, d)
                linear(pre + "ffn.up" + ch, f, p)
                if c.activation == "swiglu":
                    linear(pre + "ffn.gate" + ch, f, p)
                linear(pre + "ffn.down" + ch, d, pf)
            norm(f"norm_f.chain.{i}", d)
            shapes[f"lm_head.chain.{i}.weight"] = (c.vocab_size, d)
        return shapes

    def _check_tensors(self):
        expected = self.expected_shapes()
        for name, shape in expected.items():
            if name not in self.tensors:
                raise ValueError(f"model.safetensors lacks tensor {name} (shape {list(shape)}) that config.json's model needs")
            if tuple(self.tensors[name].shape) != shape:
                raise ValueError(f"model.safetensors: tensor {name} has shape {list(self.tensors[name].shape)}, "
                                 f"config.json's model needs {list(shape)}")
        extra = sorted(set(self.tensors) - set(expected))
        if extra:
            raise ValueError(f"model.safetensors holds tensors config.json's model does not use, e.g. {extra[0]}")

    def torch_state_dict(self):
        """The tensors as torch tensors (needs PyTorch; the numpy forward does not)."""
        import torch
        return {n: torch.from_numpy(t.copy()) for n, t in self.tensors.items()}

    # ---- forward ---------------------------------------------------------------------------------

    def _scale(self, chains):
        n = self.config.num_chains
        k = n if chains is None else int(chains)
        if not 1 <= k <= n:
            raise ValueError(f"chains={chains}: this model has {n} chains {self.config.chains}; use 1..{n}")
        return k

    def logits(self, ids, chains=None):
        """Logits of scale `chains` (default all) for every position: ids [T] -> [T, V], or [B, T] -> [B, T, V]."""
        a = np.asarray(ids, dtype=np.int64)
        if a.ndim not in (1, 2) or a.shape[-1] < 1:
            raise ValueError(f"ids must be [T] or [B, T] with T >= 1, got shape {list(a.shape)}")
        out = self._forward(a.reshape(-1, a.shape[-1]), self._scale(chains), cache=None)
        return out.reshape(a.shape + (self.config.vocab_size,))

    def _forward(self, ids, k, cache):
        """ids [B, T] appended after the cache's positions (if any); returns logits [B, T, V] of scale k."""
        c = self.config
        if ids.min() < 0 or ids.max() >= c.vocab_size:
            raise ValueError(f"token ids must be in [0, {c.vocab_size}), got {int(ids.min())}..{int(ids.max())}")
        start = 0 if cache is None else cache["length"]
        if start + ids.shape[1] > c.max_seq_len:
            raise ValueError(f"{start + ids.shape[1]} positions exceed max_seq_len {c.max_seq_len}")
        t = self.tensors
        x = np.concatenate([t[f"embed.chain.{i}.weight"][ids] for i in range(k)], axis=-1)
        for l in range(c.num_layers):
            pre = f"layers.{l}."
            x = x + self._attention(self._norm(x, pre + "norm1", k), pre, k, start, cache, l)
            h = self._norm(x, pre + "norm2", k)
            f = c.ffn_per_head
            ffn_widths = [f * c.chains[i] for i in range(k)]
            up = self._chain_linear(h, pre + "ffn.up", k)
            if c.activation == "swiglu":
                gate = self._chain_linear(h, pre + "ffn.gate", k)
                act = gate * _sigmoid(gate) * up
            else:
                act = _gelu_tanh(up)
            x = x + self._chain_linear(act, pre + "ffn.down", k, in_widths=ffn_widths)
        if cache is not None:
            cache["length"] = start + ids.shape[1]
        h = self._norm(x, "norm_f", k)
        logits = np.zeros(ids.shape + (c.vocab_size,), dtype=np.float32)
        off = 0
        for i in range(k):  # logits_k = sum_{i<k} h_i W_i^T, a running sum over chains
            d = c.width(i)
            logits += h[..., off:off + d] @ t[f"lm_head.chain.{i}.weight"].T
            off += d
        return logits

    def _norm(self, x, name, k):
        """Each chain's slice normalised on its own (MODEL.md)."""
        c, t = self.config, self.tensors
        parts = []
        off = 0
        for i in range(k):
            d = c.width(i)
            s = x[..., off:off + d]
            n = f"{name}.chain.{i}"
            if c.norm == "layernorm":
                mu = s.mean(axis=-1, keepdims=True)
                var = ((s - mu) ** 2).mean(axis=-1, keepdims=True)
                parts.append((s - mu) / np.sqrt(var + np.float32(c.norm_eps)) * t[n + ".weight"] + t[n + ".bias"])
            else:
                ms = (s * s).mean(axis=-1, keepdims=True)
                parts.append(s / np.sqrt(ms + np.float32(c.norm_eps)) * t[n + ".weight"])
            off += d
        return np.concatenate(parts, axis=-1)

    def _chain_linear(self, x, name, k, in_widths=None):
        """Output chain i reads the first sum_{j<=i} in_j columns of x: y_i = x_{<=i} W_i^T + b_i."""
        c, t = self.config, self.tensors
        widths = in_widths or [c.width(i) for i in range(k)]
        outs = []
        cols = 0
        for i in range(k):
            cols += widths[i]
            y = x[..., :cols] @ t[f"{name}.chain.{i}.weight"].T
            if c.bias:
                y = y + t[f"{name}.chain.{i}.bias"]
            outs.append(y)
        return np.concatenate(outs, axis=-1)

    def _dense(self, x, name):
        t = self.tensors
        y = x @ t[name + ".weight"].T
        return y + t[name + ".bias"] if self.config.bias else y

    def _rope(self, x, start):
        """Rotate-half RoPE over the last axis (head_dim) of x [B, T, heads, hd] at positions start..start+T-1."""
        half = self.config.head_dim // 2
        pos = np.arange(start, start + x.shape[1], dtype=np.float64)
        angle = pos[:, None] * self._inv_freq[None, :]
        cos = np.cos(angle).astype(np.float32)[None, :, None, :]
        sin = np.sin(angle).astype(np.float32)[None, :, None, :]
        x1, x2 = x[..., :half], x[..., half:]
        return np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)

    def _attention(self, h, pre, k, start, cache, layer):
        c = self.config
        b, steps = h.shape[0], h.shape[1]
        hd = c.head_dim
        heads = sum(c.chains[:k])
        q = self._chain_linear(h, pre + "attn.q", k).reshape(b, steps, heads, hd)
        if c.air:  # K/V: one dense projection of chain 0's slice, kv_heads heads shared by every query head
            h0 = h[..., :c.width(0)]
            key = self._dense(h0, pre + "attn.k.chain.0").reshape(b, steps, c.kv_heads, hd)
            val = self._dense(h0, pre + "attn.v.chain.0").reshape(b, steps, c.kv_heads, hd)
        else:
            key = self._chain_linear(h, pre + "attn.k", k).reshape(b, steps, heads, hd)
            val = self._chain_linear(h, pre + "attn.v", k).reshape(b, steps, heads, hd)
        q, key = self._rope(q, start), self._rope(key, start)
        if cache is not None:
            if start:
                key = np.concatenate([cache["k"][layer], key], axis=1)
                val = np.concatenate([cache["v"][layer], val], axis=1)
            cache["k"][layer], cache["v"][layer] = key, val
        if c.air:  # query head j uses K/V head j mod kv_heads
            tile = np.arange(heads) % c.kv_heads
            key, val = key[:, :, tile], val[:, :, tile]
        scores = np.einsum("bqhd,bkhd->bhqk", q, key) / np.float32(math.sqrt(hd))
        total = key.shape[1]
        causal = np.arange(total)[None, :] > (start + np.arange(steps))[:, None]
        scores = np.where(causal[None, None], np.float32(-np.inf), scores)
        scores = scores - scores.max(axis=-1, keepdims=True)
        p = np.exp(scores)
        p /= p.sum(axis=-1, keepdims=True)
        att = np.einsum("bhqk,bkhd->bqhd", p, val).reshape(b, steps, heads * hd)
        return self._chain_linear(att, pre + "attn.o", k)

    # ---- generation ------------------------------------------------------------------------------

    def generate_ids(self, prompt_ids, max_new_tokens=200, temperature=0.0, top_k=40, chains=None, seed=None,
                     stop_at_eos=True):
        """Generated ids after `prompt_ids`, as `catena generate` produces them: greedy (temperature 0) gives the same ids;
        sampling draws from the same distribution with numpy's generator (not Java's, so other samples). Past
        max_seq_len the context slides like Catena's: the most recent half is re-encoded (positions restart at 0)."""
        k = self._scale(chains)
        c = self.config
        prompt = [int(i) for i in prompt_ids]
        if not prompt:
            raise ValueError("the prompt is empty; give at least one token")
        if temperature < 0 or top_k < 0 or max_new_tokens < 0:
            raise ValueError("temperature, top_k and max_new_tokens must be >= 0 (temperature 0 = greedy)")
        rng = np.random.default_rng(seed)
        cap = c.max_seq_len
        context = list(prompt)
        cache = self._new_cache()
        logits = self._forward(np.array([context[-cap:]]), k, cache)[0, -1]
        out = []
        for n in range(max_new_tokens):
            nxt = _sample(logits, temperature, top_k, rng)
            out.append(nxt)
            if (stop_at_eos and nxt == c.eos_token_id) or n == max_new_tokens - 1:
                break
            context.append(nxt)
            if cache["length"] == cap:  # context full: re-encode the most recent half
                cache = self._new_cache()
                logits = self._forward(np.array([context[-(cap // 2):]]), k, cache)[0, -1]
            else:
                logits = self._forward(np.array([[nxt]]), k, cache)[0, -1]
        return out

    def generate(self, prompt, max_new_tokens=200, temperature=0.0, **kw):
        """The text generated after `prompt` (str; needs the export's tokenizer.json). temperature 0 = greedy."""
        if self.tokenizer is None:
            raise ValueError("this export has no tokenizer.json (exported with --no-tokenizer); use generate_ids with token ids")
        ids = self.generate_ids(self.tokenizer.encode(prompt), max_new_tokens, temperature, **kw)
        return self.tokenizer.decode(ids)

    def _new_cache(self):
        n = self.config.num_layers
        return {"length": 0, "k": [None] * n, "v": [None] * n}


def _gelu_tanh(x):
    return np.float32(0.5) * x * (np.float32(1) + np.tanh(np.float32(math.sqrt(2 / math.pi)) * (x + np.float32(0.044715) * x ** 3)))


def _sigmoid(x):
    return np.float32(0.5) * (np.float32(1) + np.tanh(np.float32(0.5) * x))  # no overflow for large |x|


def _sample(logits, temperature, top_k, rng):
    if temperature == 0:
        return int(np.argmax(logits))  # the first maximum, as Catena's greedy picks
    z = logits.astype(np.float64)
    if 0 < top_k < z.size:
        cutoff = np.sort(z)[z.size - top_k]
        z = np.where(z >= cutoff, z, -np.inf)
    p = np.exp((z - z.max()) / temperature)
    return int(rng.choice(z.size, p=p / p.sum()))


def load(path):
    """Loads a `catena export` directory: config.json, model.safetensors and (when present) tokenizer.json."""
    where = os.path.join(path, "config.json")
    if not os.path.isfile(where):
        raise FileNotFoundError(f"{where} does not exist; expected the --out directory of `catena export`")
    with open(where, encoding="utf-8") as f:
        config = Config(json.load(f), where)
    tensors, _ = safetensors_numpy.read(os.path.join(path, "model.safetensors"))
    tok_file = os.path.join(path, "tokenizer.json")
    tokenizer = Tokenizer.from_file(tok_file) if os.path.isfile(tok_file) else None
    if tokenizer is not None and tokenizer.vocab_size != config.vocab_size:
        raise ValueError(f"{tok_file} has {tokenizer.vocab_size} ids but config.json's vocab_size is {config.vocab_size}")
    return Model(config, tensors, tokenizer)

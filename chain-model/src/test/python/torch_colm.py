"""Independent PyTorch implementation of CoLM / CoLM-Air (Chain-of-Model language models).

Follows chain-model/MODEL.md (the contract between the Java engine, its checkpoints and this
file). Written from MODEL.md alone, not from the Java code, so it can serve as a correctness
oracle (load a Catena checkpoint, compare logits) and as a performance peer (bench_train.py).

Layout: every tensor of the checkpoint is one nn.Parameter, and ``model.named_parameters()``
yields exactly the MODEL.md names (``embed.c0``, ``layers.0.attn.q.c1.weight``, ...).
Hidden states inside the layers are kept as 2-D [B*T, width] matrices, columns chain-major.

Runs under Debian's /usr/bin/python3 with python3-torch (1.13) and python3-numpy.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
from dataclasses import dataclass, field, asdict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT = "catena-checkpoint"
FORMAT_VERSION = 1


class CatenaFormatError(ValueError):
    """A checkpoint does not match the MODEL.md contract."""


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------

def round_to_bf16(t: torch.Tensor) -> torch.Tensor:
    """t rounded to bf16 (round to nearest even) and back to its dtype."""
    return t.to(torch.bfloat16).to(t.dtype)


# Catena's precision=bf16, emulated: GEMM_OPERANDS["round"] = round_to_bf16 rounds both operands of every linear
# (the chain linears and the LM head) to bf16 before an fp32 product, and the attention core's q, k, v and
# probabilities (Catena's Bf16Attention: bf16 products, fp32 softmax); norms and softmax stay fp32, as in Catena.
# None (default): plain fp32.
GEMM_OPERANDS = {"round": None}


@dataclass
class ColmConfig:
    vocab_size: int
    head_dim: int
    chains: List[int]
    layers: int
    kv_heads: Optional[int] = None          # CoLM-Air only
    ffn_mult: float = 4
    activation: str = "gelu"               # gelu | swiglu
    norm: str = "layernorm"                # layernorm | rmsnorm
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    variant: str = "colm"                  # colm | colm-air
    max_seq_len: int = 2048
    bias: bool = True
    loss_weights: Union[None, str, List[float]] = None   # None -> 1/n each; "full-only"; list
    extra: Dict[str, object] = field(default_factory=dict, repr=False)  # unknown keys, kept

    REQUIRED = ("vocab_size", "head_dim", "chains", "layers")

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Dict[str, object], warn=True) -> "ColmConfig":
        d = dict(d)
        missing = [k for k in cls.REQUIRED if k not in d]
        if missing:
            raise CatenaFormatError(f"config is missing required key(s) {missing}")
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        extra = {k: d.pop(k) for k in list(d) if k not in known}
        if warn:
            if extra:
                print(f"torch_colm: warning: config keys not in MODEL.md ignored: {sorted(extra)}",
                      file=sys.stderr)
            defaulted = sorted(k for k in known if k not in d and k not in ("kv_heads", "loss_weights"))
            if defaulted:
                print(f"torch_colm: warning: config keys absent, defaults used: {defaulted}",
                      file=sys.stderr)
        cfg = cls(**d, extra=extra)
        cfg.chains = [int(c) for c in cfg.chains]
        cfg.validate()
        return cfg

    def to_dict(self) -> Dict[str, object]:
        d = asdict(self)
        extra = d.pop("extra")
        d.update(extra)
        return d

    # -- derived sizes --------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.chains)

    @property
    def heads(self) -> int:
        return sum(self.chains)

    @property
    def d_model(self) -> int:
        return self.head_dim * self.heads

    def widths(self) -> List[int]:                 # D_i
        return [self.head_dim * c for c in self.chains]

    def offsets(self) -> List[int]:                # off_i
        out, s = [], 0
        for w in self.widths():
            out.append(s)
            s += w
        return out

    def prefixes(self) -> List[int]:               # P_i
        return [o + w for o, w in zip(self.offsets(), self.widths())]

    def ffn_widths(self) -> List[int]:             # F_i
        return [int(round(self.ffn_mult * self.head_dim * c)) for c in self.chains]

    def ffn_prefixes(self) -> List[int]:           # PF_i
        out, s = [], 0
        for w in self.ffn_widths():
            s += w
            out.append(s)
        return out

    def resolved_loss_weights(self) -> List[float]:
        lw = self.loss_weights
        if lw is None:
            return [1.0 / self.n] * self.n
        if isinstance(lw, str):
            if lw == "full-only":
                return [0.0] * (self.n - 1) + [1.0]
            raise ValueError(f"loss_weights: unknown name {lw!r} (expected a list or 'full-only')")
        return [float(w) for w in lw]

    def validate(self) -> None:
        def bad(msg):
            raise ValueError(f"invalid CoLM config: {msg}")
        if not self.chains or any(int(c) != c or c <= 0 for c in self.chains):
            bad(f"chains must be a non-empty list of positive integers, got {self.chains}")
        for k in ("vocab_size", "head_dim", "layers", "max_seq_len"):
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                bad(f"{k} must be a positive integer, got {v!r}")
        if self.head_dim % 2:
            bad(f"head_dim {self.head_dim} must be even for RoPE")
        for c in self.chains:
            f = self.ffn_mult * self.head_dim * c
            if abs(f - round(f)) > 1e-9 or round(f) <= 0:
                bad(f"ffn_mult {self.ffn_mult} * head_dim {self.head_dim} * c_i {c} = {f} is not a "
                    f"positive integer")
        if self.activation not in ("gelu", "swiglu"):
            bad(f"activation must be gelu or swiglu, got {self.activation!r}")
        if self.norm not in ("layernorm", "rmsnorm"):
            bad(f"norm must be layernorm or rmsnorm, got {self.norm!r}")
        if self.variant not in ("colm", "colm-air"):
            bad(f"variant must be colm or colm-air, got {self.variant!r}")
        if self.variant == "colm-air":
            if not isinstance(self.kv_heads, int) or self.kv_heads <= 0:
                bad(f"colm-air needs a positive integer kv_heads, got {self.kv_heads!r}")
            for c in self.chains:
                if c % self.kv_heads:
                    bad(f"colm-air: chain head count {c} is not a multiple of kv_heads "
                        f"{self.kv_heads} (chains {self.chains})")
        if not (self.norm_eps > 0):
            bad(f"norm_eps must be > 0, got {self.norm_eps}")
        w = self.resolved_loss_weights()
        if len(w) != self.n:
            bad(f"loss_weights has {len(w)} entries, chains has {self.n}")
        if any(x < 0 for x in w) or abs(sum(w) - 1.0) > 1e-5:
            bad(f"loss_weights must be non-negative and sum to 1, got {w}")


# ----------------------------------------------------------------------------------------------
# Tensor table (MODEL.md), chain-major order
# ----------------------------------------------------------------------------------------------

def tensor_specs(cfg: ColmConfig) -> List[Tuple[str, Tuple[int, ...], int]]:
    """(name, shape, chain) for every tensor, in the flat-buffer order of MODEL.md: all tensors of
    chain 0 (in the table's order, layer by layer), then chain 1, ..."""
    D, P, Fw, PF = cfg.widths(), cfg.prefixes(), cfg.ffn_widths(), cfg.ffn_prefixes()
    V, air, b = cfg.vocab_size, cfg.variant == "colm-air", cfg.bias
    ln = cfg.norm == "layernorm"
    out = []

    def norm(prefix, i):
        out.append((f"{prefix}.c{i}.gain", (D[i],), i))
        if ln:
            out.append((f"{prefix}.c{i}.bias", (D[i],), i))

    def lin(prefix, i, rows, cols):
        out.append((f"{prefix}.c{i}.weight", (rows, cols), i))
        if b:
            out.append((f"{prefix}.c{i}.bias", (rows,), i))

    for i in range(cfg.n):
        out.append((f"embed.c{i}", (V, D[i]), i))
        for l in range(cfg.layers):
            p = f"layers.{l}"
            norm(f"{p}.norm1", i)
            if not air:
                # MODEL.md: CoLM's q, k and v weights of a chain come first, then the three biases (one [3 D_i, P_i] GEMM)
                for m in ("q", "k", "v"):
                    out.append((f"{p}.attn.{m}.c{i}.weight", (D[i], P[i]), i))
                if b:
                    for m in ("q", "k", "v"):
                        out.append((f"{p}.attn.{m}.c{i}.bias", (D[i],), i))
            else:
                lin(f"{p}.attn.q", i, D[i], P[i])
            if air and i == 0:
                kvw = cfg.kv_heads * cfg.head_dim
                lin(f"{p}.attn.k", 0, kvw, D[0])
                lin(f"{p}.attn.v", 0, kvw, D[0])
            lin(f"{p}.attn.o", i, D[i], P[i])
            norm(f"{p}.norm2", i)
            lin(f"{p}.ffn.up", i, Fw[i], P[i])
            if cfg.activation == "swiglu":
                lin(f"{p}.ffn.gate", i, Fw[i], P[i])
            lin(f"{p}.ffn.down", i, D[i], PF[i])
        norm("norm_f", i)
        out.append((f"head.c{i}", (D[i], V), i))
    return out


# ----------------------------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------------------------

class ChainParams(nn.Module):
    """Bare per-chain parameters named c0, c1, ... (embedding tables, LM head rows)."""

    def __init__(self, shapes: Sequence[Tuple[int, ...]]):
        super().__init__()
        for i, s in enumerate(shapes):
            self.register_parameter(f"c{i}", nn.Parameter(torch.empty(*s)))

    def chain(self, i: int) -> torch.Tensor:
        return getattr(self, f"c{i}")


class ChainLinear(nn.Module):
    """y_i = x[:, :sum_{j<=i} a_j] W_i^T + b_i, one nn.Linear per OUTPUT chain, concatenated."""

    def __init__(self, in_widths: Sequence[int], out_widths: Sequence[int], bias: bool):
        super().__init__()
        self.in_prefix = list(np.cumsum(in_widths).tolist())
        self.out_widths = list(out_widths)
        for i, bw in enumerate(out_widths):
            self.add_module(f"c{i}", nn.Linear(self.in_prefix[i], bw, bias=bias))

    def forward(self, x: torch.Tensor, k: Optional[int] = None) -> torch.Tensor:
        """x: [N, >= in_prefix[k-1]] (2-D). Only output chains 0..k-1 (and their weights) are used."""
        k = len(self.out_widths) if k is None else k
        outs = []
        for i in range(k):
            lin = getattr(self, f"c{i}")
            p = self.in_prefix[i]
            xi = x if x.shape[-1] == p else x[:, :p]
            w = lin.weight
            if GEMM_OPERANDS["round"] is not None:
                xi, w = GEMM_OPERANDS["round"](xi), GEMM_OPERANDS["round"](w)
            outs.append(F.linear(xi, w, lin.bias))
        return outs[0] if k == 1 else torch.cat(outs, dim=-1)


class _NormParams(nn.Module):
    def __init__(self, width: int, with_bias: bool):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(width))
        if with_bias:
            self.bias = nn.Parameter(torch.zeros(width))
        else:
            self.bias = None


class ChainNorm(nn.Module):
    """LayerNorm (gain+bias, biased variance) or RMSNorm (gain) over each chain's slice."""

    def __init__(self, widths: Sequence[int], kind: str, eps: float):
        super().__init__()
        self.widths, self.kind, self.eps = list(widths), kind, eps
        self.offsets = [0] + list(np.cumsum(widths).tolist())[:-1]
        for i, w in enumerate(widths):
            self.add_module(f"c{i}", _NormParams(w, kind == "layernorm"))

    def _one(self, x: torch.Tensor, p: _NormParams) -> torch.Tensor:
        if self.kind == "layernorm":
            return F.layer_norm(x, (x.shape[-1],), p.gain, p.bias, self.eps)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * p.gain

    def forward(self, x: torch.Tensor, k: Optional[int] = None) -> torch.Tensor:
        k = len(self.widths) if k is None else k
        outs = []
        for i in range(k):
            o, w = self.offsets[i], self.widths[i]
            xi = x if (k == 1 and x.shape[-1] == w) else x[:, o:o + w]
            outs.append(self._one(xi, getattr(self, f"c{i}")))
        return outs[0] if k == 1 else torch.cat(outs, dim=-1)


class Rope:
    """Rotate-half RoPE tables: inv_freq_m = theta^(-2m/hd), a = t * inv_freq_m (float64, cast)."""

    def __init__(self, head_dim: int, theta: float, max_len: int):
        self.hd, self.theta, self.max_len = head_dim, theta, max_len
        self._cache: Dict[Tuple[int, torch.dtype, torch.device], Tuple[torch.Tensor, torch.Tensor]] = {}

    def tables(self, T: int, dtype, device):
        if T > self.max_len:
            raise ValueError(f"sequence length {T} exceeds max_seq_len {self.max_len}")
        key = (T, dtype, device)
        if key not in self._cache:
            h = self.hd // 2
            m = torch.arange(h, dtype=torch.float64)
            inv = self.theta ** (-2.0 * m / self.hd)
            a = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]        # [T, h]
            cos, sin = torch.cos(a), torch.sin(a)
            C = torch.cat([cos, cos], -1).to(dtype=dtype, device=device)           # [T, hd]
            S = torch.cat([-sin, sin], -1).to(dtype=dtype, device=device)
            self._cache[key] = (C, S)
        return self._cache[key]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., T, hd] -> out[m] = x[m]cos - x[m+h]sin, out[m+h] = x[m]sin + x[m+h]cos."""
        C, S = self.tables(x.shape[-2], x.dtype, x.device)
        h = self.hd // 2
        rot = torch.cat([x[..., h:], x[..., :h]], -1)
        return x * C + rot * S


class Attention(nn.Module):
    def __init__(self, cfg: ColmConfig, rope: Rope):
        super().__init__()
        self.cfg, self.rope = cfg, rope
        D = cfg.widths()
        self.air = cfg.variant == "colm-air"
        self.q = ChainLinear(D, D, cfg.bias)
        if self.air:
            kvw = cfg.kv_heads * cfg.head_dim
            self.k = ChainLinear([D[0]], [kvw], cfg.bias)
            self.v = ChainLinear([D[0]], [kvw], cfg.bias)
        else:
            self.k = ChainLinear(D, D, cfg.bias)
            self.v = ChainLinear(D, D, cfg.bias)
        self.o = ChainLinear(D, D, cfg.bias)
        self._masks: Dict[Tuple[int, torch.dtype, torch.device], torch.Tensor] = {}

    def _mask(self, T, dtype, device):
        key = (T, dtype, device)
        if key not in self._masks:
            m = torch.full((T, T), float("-inf"), dtype=dtype, device=device).triu_(1)
            self._masks[key] = m
        return self._masks[key]

    def forward(self, h: torch.Tensor, B: int, T: int, k: int) -> torch.Tensor:
        cfg, hd = self.cfg, self.cfg.head_dim
        Hk = sum(cfg.chains[:k])

        def heads(t, H):          # [B*T, H*hd] -> [B, H, T, hd] (view)
            return t.view(B, T, H, hd).transpose(1, 2)

        q = self.rope.apply(heads(self.q(h, k), Hk))                      # [B,Hk,T,hd] contiguous
        if self.air:
            h0 = h[:, :cfg.widths()[0]]
            Hkv = cfg.kv_heads
            kk = self.rope.apply(heads(self.k(h0, 1), Hkv))
            vv = heads(self.v(h0, 1), Hkv)
            if Hk != Hkv:            # query head j uses kv head j mod kv_heads (tiled)
                kk = kk.repeat(1, Hk // Hkv, 1, 1)
                vv = vv.repeat(1, Hk // Hkv, 1, 1)
        else:
            kk = self.rope.apply(heads(self.k(h, k), Hk))
            vv = heads(self.v(h, k), Hk)
        q = q.reshape(B * Hk, T, hd)
        kk = kk.reshape(B * Hk, T, hd)
        vv = vv.reshape(B * Hk, T, hd)
        rnd = GEMM_OPERANDS["round"]
        if rnd is not None:  # Catena's bf16 attention core: q, k, v and the probabilities rounded, softmax fp32
            q, kk, vv = rnd(q), rnd(kk), rnd(vv)
        # scores = mask + (q k^T) / sqrt(hd), causal (-inf above the diagonal)
        s = torch.baddbmm(self._mask(T, q.dtype, q.device), q, kk.transpose(1, 2),
                          beta=1.0, alpha=1.0 / math.sqrt(hd))
        p = torch.softmax(s, dim=-1)
        if rnd is not None:
            p = rnd(p)
        a = torch.bmm(p, vv)                                               # [B*Hk, T, hd]
        a = a.view(B, Hk, T, hd).transpose(1, 2).reshape(B * T, Hk * hd)  # heads chain-major
        return self.o(a, k)


class FFN(nn.Module):
    def __init__(self, cfg: ColmConfig):
        super().__init__()
        D, Fw = cfg.widths(), cfg.ffn_widths()
        self.swiglu = cfg.activation == "swiglu"
        self.up = ChainLinear(D, Fw, cfg.bias)
        if self.swiglu:
            self.gate = ChainLinear(D, Fw, cfg.bias)
        self.down = ChainLinear(Fw, D, cfg.bias)

    def forward(self, h: torch.Tensor, k: int) -> torch.Tensor:
        if self.swiglu:
            a = F.silu(self.gate(h, k)) * self.up(h, k)
        else:
            a = F.gelu(self.up(h, k), approximate="tanh")
        return self.down(a, k)


class Block(nn.Module):
    def __init__(self, cfg: ColmConfig, rope: Rope):
        super().__init__()
        D = cfg.widths()
        self.norm1 = ChainNorm(D, cfg.norm, cfg.norm_eps)
        self.attn = Attention(cfg, rope)
        self.norm2 = ChainNorm(D, cfg.norm, cfg.norm_eps)
        self.ffn = FFN(cfg)

    def forward(self, x, B, T, k):
        x = x + self.attn(self.norm1(x, k), B, T, k)
        x = x + self.ffn(self.norm2(x, k), k)
        return x


class ColmModel(nn.Module):
    def __init__(self, cfg: ColmConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        D, V = cfg.widths(), cfg.vocab_size
        self.rope = Rope(cfg.head_dim, cfg.rope_theta, cfg.max_seq_len)
        self.embed = ChainParams([(V, d) for d in D])
        self.layers = nn.ModuleList([Block(cfg, self.rope) for _ in range(cfg.layers)])
        self.norm_f = ChainNorm(D, cfg.norm, cfg.norm_eps)
        self.head = ChainParams([(d, V) for d in D])
        self.init_weights()

    # -- init -------------------------------------------------------------------------------
    @torch.no_grad()
    def init_weights(self, std: float = 0.02, generator: Optional[torch.Generator] = None):
        """Weights, embeddings and head ~ N(0, std); biases 0; norm gains 1."""
        for name, p in self.named_parameters():
            if name.endswith(".gain"):
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            else:
                p.normal_(0.0, std, generator=generator)

    # -- forward ----------------------------------------------------------------------------
    def forward(self, tokens: torch.Tensor, k: Optional[int] = None) -> List[torch.Tensor]:
        """tokens [B, T] (int) -> [logits_1, ..., logits_k], each [B, T, V].
        Elastic inference: with k < n only chains 0..k-1 (and their parameters) are touched."""
        cfg = self.cfg
        k = cfg.n if k is None else int(k)
        if not 1 <= k <= cfg.n:
            raise ValueError(f"k must be in 1..{cfg.n}, got {k}")
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [B, T], got shape {tuple(tokens.shape)}")
        B, T = tokens.shape
        tok = tokens.reshape(-1).long()
        embs = [F.embedding(tok, self.embed.chain(i)) for i in range(k)]
        x = embs[0] if k == 1 else torch.cat(embs, dim=-1)                # [B*T, P_{k-1}]
        for blk in self.layers:
            x = blk(x, B, T, k)
        h = self.norm_f(x, k)
        D, off, V = cfg.widths(), cfg.offsets(), cfg.vocab_size
        logits, acc = [], None
        for i in range(k):
            hi = h if (k == 1 and h.shape[-1] == D[0]) else h[:, off[i]:off[i] + D[i]]
            w = self.head.chain(i)
            if GEMM_OPERANDS["round"] is not None:
                hi, w = GEMM_OPERANDS["round"](hi), GEMM_OPERANDS["round"](w)
            acc = hi.mm(w) if acc is None else torch.addmm(acc, hi, w)
            logits.append(acc.view(B, T, V))
        return logits

    def loss(self, tokens: torch.Tensor, targets: torch.Tensor,
             weights: Optional[Sequence[float]] = None) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """loss = sum_k w_k * mean CE(logits_k, targets); returns (loss, [loss_k]). Scales with
        w_k == 0 are not evaluated (their entry in the list is None)."""
        w = self.cfg.resolved_loss_weights() if weights is None else list(weights)
        logits = self(tokens)
        tgt = targets.reshape(-1).long()
        V = self.cfg.vocab_size
        total, per = None, []
        for wk, lk in zip(w, logits):
            if wk == 0:
                per.append(None)
                continue
            ce = F.cross_entropy(lk.reshape(-1, V), tgt)
            per.append(ce)
            total = wk * ce if total is None else total + wk * ce
        return total, per

    def lm_loss(self, tokens: torch.Tensor):
        """Next-token loss on tokens [B, T+1]: inputs tokens[:, :-1], targets tokens[:, 1:]."""
        return self.loss(tokens[:, :-1], tokens[:, 1:])

    def num_params(self, k: Optional[int] = None) -> int:
        k = self.cfg.n if k is None else k
        return sum(int(np.prod(s)) for _, s, c in tensor_specs(self.cfg) if c < k)


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------

def resolve_ckpt_dir(ckpt_dir: str) -> str:
    """A step directory (has model.json) or a checkpoint root with a `latest` file naming one."""
    if os.path.isfile(os.path.join(ckpt_dir, "model.json")):
        return ckpt_dir
    latest = os.path.join(ckpt_dir, "latest")
    if os.path.isfile(latest):
        with open(latest) as f:
            name = f.read().strip()
        if not name:
            raise CatenaFormatError(f"{latest} is empty")
        step = name if os.path.isabs(name) else os.path.join(ckpt_dir, name)
        if not os.path.isfile(os.path.join(step, "model.json")):
            raise CatenaFormatError(f"{latest} names {name!r}, but {step}/model.json does not exist")
        return step
    raise CatenaFormatError(f"{ckpt_dir} is neither a step directory (no model.json) nor a "
                            f"checkpoint root (no `latest` file)")


def _check_tensor_list(meta_tensors, specs, strict_order: bool, path: str):
    exp = {n: (s, c) for n, s, c in specs}
    seen, running, last_chain = set(), 0, -1
    for idx, t in enumerate(meta_tensors):
        name = t.get("name")
        if name not in exp:
            raise CatenaFormatError(f"{path}: tensors[{idx}] names unexpected tensor {name!r}")
        if name in seen:
            raise CatenaFormatError(f"{path}: tensor {name} listed twice")
        seen.add(name)
        es, ec = exp[name]
        shape = tuple(t.get("shape", ()))
        if shape != es:
            raise CatenaFormatError(f"{path}: tensor {name}: expected shape {list(es)}, found "
                                    f"{list(shape)} in the tensors list")
        if "chain" in t and t["chain"] != ec:
            raise CatenaFormatError(f"{path}: tensor {name}: expected chain {ec}, found {t['chain']}")
        if "offset" in t and t["offset"] != running:
            raise CatenaFormatError(f"{path}: tensor {name}: expected offset {running} (running "
                                    f"element offset in list order), found {t['offset']}")
        if ec < last_chain:
            raise CatenaFormatError(f"{path}: tensor {name} (chain {ec}) listed after a tensor of "
                                    f"chain {last_chain}: tensors are not chain-major")
        last_chain = ec
        running += int(np.prod(es))
    missing = [n for n, _, _ in specs if n not in seen]
    if missing:
        raise CatenaFormatError(f"{path}: tensors list lacks {len(missing)} tensor(s), first "
                                f"{missing[:5]}")
    order = [t["name"] for t in meta_tensors]
    canon = [n for n, _, _ in specs]
    if order != canon:
        i = next(j for j, (a, b) in enumerate(zip(order, canon)) if a != b)
        msg = (f"{path}: tensor order differs from torch_colm's reading of MODEL.md at index {i}: "
               f"{order[i]!r} vs {canon[i]!r}")
        if strict_order:
            raise CatenaFormatError(msg)
        print(f"torch_colm: warning: {msg}", file=sys.stderr)


def load_catena(ckpt_dir: str, dtype: torch.dtype = torch.float32, strict_order: bool = False,
                warn: bool = True) -> ColmModel:
    """Load a Catena checkpoint (step directory or root with `latest`) into a ColmModel (eval mode).
    Every tensor's name and shape is checked against MODEL.md; the checkpoint's metadata is kept in
    model.catena_meta and the resolved directory in model.catena_dir."""
    step = resolve_ckpt_dir(ckpt_dir)
    mpath = os.path.join(step, "model.json")
    with open(mpath) as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT:
        raise CatenaFormatError(f"{mpath}: format is {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CatenaFormatError(f"{mpath}: format_version {meta.get('format_version')!r}, this "
                                f"reader knows {FORMAT_VERSION}")
    if "config" not in meta:
        raise CatenaFormatError(f"{mpath}: no \"config\"")
    cfg = ColmConfig.from_dict(meta["config"], warn=warn)
    specs = tensor_specs(cfg)
    if "tensors" in meta:
        _check_tensor_list(meta["tensors"], specs, strict_order, mpath)
    pdir = os.path.join(step, "params")
    if not os.path.isdir(pdir):
        raise CatenaFormatError(f"{step}: no params/ directory")
    expected = {n for n, _, _ in specs}
    extra = sorted(f[:-4] for f in os.listdir(pdir) if f.endswith(".npy") and f[:-4] not in expected)
    if extra:
        raise CatenaFormatError(f"{pdir}: unexpected tensor file(s) {extra[:5]} for this config")
    model = ColmModel(cfg)
    params = dict(model.named_parameters())
    if set(params) != expected:   # internal consistency of this module
        raise AssertionError(f"module names != tensor table: {set(params) ^ expected}")
    with torch.no_grad():
        for name, shape, _ in specs:
            fpath = os.path.join(pdir, name + ".npy")
            if not os.path.isfile(fpath):
                raise CatenaFormatError(f"tensor {name}: file {fpath} is missing "
                                        f"(expected shape {list(shape)})")
            arr = np.load(fpath, allow_pickle=False)
            if arr.dtype != np.dtype("<f4"):
                raise CatenaFormatError(f"tensor {name}: expected dtype float32 '<f4', found "
                                        f"{arr.dtype.str!r} in {fpath}")
            if tuple(arr.shape) != tuple(shape):
                raise CatenaFormatError(f"tensor {name}: expected shape {list(shape)}, found "
                                        f"{list(arr.shape)} in {fpath}")
            params[name].copy_(torch.from_numpy(np.ascontiguousarray(arr)))
    model = model.to(dtype)
    model.eval()
    model.catena_meta = meta
    model.catena_dir = step
    return model


def save_catena(model: ColmModel, ckpt_dir: str, trainer: Optional[dict] = None,
                frozen_chains: int = 0, overwrite: bool = False) -> str:
    """Write an inference-only Catena step directory (model.json + params/*.npy, '<f4', C order).
    Written under a temporary name and renamed when complete."""
    cfg = model.cfg
    specs = tensor_specs(cfg)
    params = dict(model.named_parameters())
    if set(params) != {n for n, _, _ in specs}:
        raise AssertionError("module parameter names differ from the MODEL.md tensor table")
    ckpt_dir = os.path.abspath(ckpt_dir)
    if os.path.exists(ckpt_dir):
        if not overwrite:
            raise FileExistsError(f"{ckpt_dir} exists")
        shutil.rmtree(ckpt_dir)
    tmp = ckpt_dir + f".tmp-{os.getpid()}"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(os.path.join(tmp, "params"))
    tensors, off = [], 0
    for name, shape, chain in specs:
        arr = params[name].detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4", copy=False)
        assert tuple(arr.shape) == tuple(shape), (name, arr.shape, shape)
        np.save(os.path.join(tmp, "params", name + ".npy"), arr)
        tensors.append({"name": name, "shape": list(shape), "chain": chain, "offset": off})
        off += int(np.prod(shape))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": cfg.to_dict(),
        "tensors": tensors,
        "trainer": trainer if trainer is not None else {"step": 0, "tokens_seen": 0, "data_position": 0},
        "frozen_chains": frozen_chains,
    }
    with open(os.path.join(tmp, "model.json"), "w") as f:
        json.dump(meta, f, indent=1)
    os.rename(tmp, ckpt_dir)
    return ckpt_dir

"""Self-check for torch_colm.py. Run: /usr/bin/python3 test_torch_colm.py  (plain asserts, no pytest)."""
import itertools
import json
import math
import os
import shutil
import sys
import tempfile
import traceback

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_colm as tc  # noqa: E402

torch.set_num_threads(1)   # tests are small; leave the other core alone


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def tiny_cfg(variant="colm", activation="gelu", norm="layernorm", chains=(2, 1, 3), kv_heads=1,
             **kw):
    d = dict(vocab_size=37, head_dim=8, chains=list(chains), layers=2,
             kv_heads=kv_heads if variant == "colm-air" else None,
             ffn_mult=1.5 if activation == "swiglu" else 2, activation=activation, norm=norm,
             norm_eps=1e-5, rope_theta=10000.0, variant=variant, max_seq_len=16, bias=True,
             loss_weights=None)
    d.update(kw)
    return tc.ColmConfig.from_dict(d)


def randomize(model, seed=0, std=0.3):
    """All parameters random (gains around 1, biases non-zero) so nothing is vacuous."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype)
            if name.endswith(".gain"):
                p.copy_(1 + 0.2 * r)
            elif name.endswith(".bias"):
                p.copy_(0.1 * r)
            else:
                p.copy_(std * r)
    return model


def tokens_for(cfg, B=3, T=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.vocab_size, (B, T), generator=g)


def all_combos():
    return list(itertools.product(("colm", "colm-air"), ("gelu", "swiglu"), ("layernorm", "rmsnorm")))


# ----------------------------------------------------------------------------------------------
# tensor table
# ----------------------------------------------------------------------------------------------

def test_names_and_shapes_match_model_md():
    ref = tc.ColmConfig.from_dict(dict(vocab_size=4096, head_dim=64, chains=[2, 2], layers=4,
                                       ffn_mult=4, activation="gelu", norm="layernorm",
                                       variant="colm", max_seq_len=128, bias=True,
                                       loss_weights=[0.5, 0.5], norm_eps=1e-5, rope_theta=1e4))
    m = tc.ColmModel(ref)
    shapes = {n: tuple(p.shape) for n, p in m.named_parameters()}
    specs = tc.tensor_specs(ref)
    assert shapes == {n: s for n, s, _ in specs}
    assert len(specs) == len(shapes)
    exp = {  # hand-written from the MODEL.md table: D_i = 128, P = [128, 256], F_i = 512, PF = [512, 1024]
        "embed.c0": (4096, 128), "embed.c1": (4096, 128),
        "layers.0.norm1.c1.gain": (128,), "layers.0.norm1.c1.bias": (128,),
        "layers.0.attn.q.c0.weight": (128, 128), "layers.0.attn.q.c1.weight": (128, 256),
        "layers.0.attn.q.c1.bias": (128,), "layers.3.attn.k.c1.weight": (128, 256),
        "layers.3.attn.v.c0.weight": (128, 128), "layers.2.attn.o.c1.weight": (128, 256),
        "layers.1.ffn.up.c0.weight": (512, 128), "layers.1.ffn.up.c1.weight": (512, 256),
        "layers.1.ffn.up.c1.bias": (512,), "layers.1.ffn.down.c0.weight": (128, 512),
        "layers.1.ffn.down.c1.weight": (128, 1024), "norm_f.c0.gain": (128,),
        "head.c0": (128, 4096), "head.c1": (128, 4096),
    }
    for n, s in exp.items():
        assert shapes.get(n) == s, (n, shapes.get(n), s)
    assert not any(".gate." in n for n in shapes)
    # total = masked-dense fraction 0.75 of a dense model's block matrices
    assert m.num_params() == sum(p.numel() for p in m.parameters())
    # chain-major: every chain-0 tensor precedes every chain-1 tensor
    chains = [c for _, _, c in specs]
    assert chains == sorted(chains)
    # Air / swiglu / rmsnorm / no bias
    air = tc.ColmModel(tiny_cfg("colm-air", "swiglu", "rmsnorm", chains=(2, 4, 2), kv_heads=2, bias=False))
    sh = {n: tuple(p.shape) for n, p in air.named_parameters()}
    assert sh["layers.0.attn.k.c0.weight"] == (16, 16) and sh["layers.0.attn.v.c0.weight"] == (16, 16)
    assert "layers.0.attn.k.c1.weight" not in sh and "layers.0.attn.v.c2.weight" not in sh
    assert sh["layers.1.ffn.gate.c1.weight"] == (48, 48)      # F_1 = 1.5*8*4, P_1 = 48
    assert sh["layers.1.ffn.down.c2.weight"] == (16, 96)      # PF_2 = 24+48+24
    assert not any(n.endswith(".bias") for n in sh)
    assert {n for n, _, _ in tc.tensor_specs(air.cfg)} == set(sh)


def test_config_validation():
    bad = [dict(chains=[2, 3], variant="colm-air", kv_heads=2),       # 3 % 2
           dict(chains=[1, 1], ffn_mult=8 / 3),                          # 8/3*8 not integer
           dict(loss_weights=[0.5, 0.4, 0.2]),
           dict(loss_weights=[1.0]),
           dict(activation="relu"), dict(norm="batchnorm"), dict(variant="dense")]
    for b in bad:
        try:
            tiny_cfg(**b)
        except ValueError:
            continue
        raise AssertionError(f"config {b} was accepted")
    c = tiny_cfg(loss_weights="full-only")
    assert c.resolved_loss_weights() == [0.0, 0.0, 1.0]
    assert tiny_cfg().resolved_loss_weights() == [1 / 3] * 3


# ----------------------------------------------------------------------------------------------
# (a) chain causality
# ----------------------------------------------------------------------------------------------

def _check_causality(cfg):
    torch.manual_seed(0)
    m = randomize(tc.ColmModel(cfg))
    tok = tokens_for(cfg)
    specs = tc.tensor_specs(cfg)
    with torch.no_grad():
        base = [t.clone() for t in m(tok)]
        n = cfg.n
        for i in range(1, n):   # perturb chains >= i (0-based); scales 1..i must be bit-identical
            for what in ("embed", "params"):
                saved = {nm: p.detach().clone() for nm, p in m.named_parameters()}
                g = torch.Generator().manual_seed(100 + i)
                for nm, _, c in specs:
                    if c >= i and (what == "params" or nm.startswith("embed.")):
                        p = dict(m.named_parameters())[nm]
                        p.add_(torch.randn(p.shape, generator=g))
                out = m(tok)
                for s in range(i):
                    assert torch.equal(out[s], base[s]), \
                        f"{cfg.variant}/{cfg.activation}/{cfg.norm}: perturbing {what} of chains >= {i} changed scale {s + 1}"
                assert not torch.equal(out[i], base[i]), "perturbation had no effect (vacuous test)"
                for nm, p in m.named_parameters():
                    p.copy_(saved[nm])
        # elastic inference: chains >= k are never touched (poison them with NaN)
        for k in range(1, n + 1):
            saved = {nm: p.detach().clone() for nm, p in m.named_parameters()}
            for nm, _, c in specs:
                if c >= k:
                    dict(m.named_parameters())[nm].fill_(float("nan"))
            out = m(tok, k=k)
            assert len(out) == k
            for s in range(k):
                assert torch.isfinite(out[s]).all(), f"k={k}: scale {s + 1} read a chain >= k"
                assert torch.allclose(out[s], base[s], rtol=1e-5, atol=1e-5), \
                    f"k={k}: elastic logits of scale {s + 1} differ from the full pass " \
                    f"(max {(out[s] - base[s]).abs().max().item()})"
            for nm, p in m.named_parameters():
                p.copy_(saved[nm])


def test_chain_causality_all_variants():
    for variant, act, norm in all_combos():
        _check_causality(tiny_cfg(variant, act, norm))
    # Air with kv_heads 2 (tiling over 4 and 2-head chains)
    _check_causality(tiny_cfg("colm-air", "gelu", "layernorm", chains=(2, 4, 2), kv_heads=2))


# ----------------------------------------------------------------------------------------------
# (b) checkpoint round trip and format errors
# ----------------------------------------------------------------------------------------------

def test_save_load_round_trip():
    tmp = tempfile.mkdtemp(prefix="torch_colm_test_")
    try:
        for variant, act, norm in [("colm", "gelu", "layernorm"), ("colm-air", "swiglu", "rmsnorm")]:
            cfg = tiny_cfg(variant, act, norm, loss_weights=[0.2, 0.3, 0.5])
            m = randomize(tc.ColmModel(cfg), seed=7)
            tok = tokens_for(cfg)
            d = os.path.join(tmp, f"{variant}-{act}", "step-00000010")
            tc.save_catena(m, d, trainer={"step": 10, "tokens_seen": 210, "data_position": 210})
            # step dir
            m2 = tc.load_catena(d)
            assert m2.cfg.to_dict() == cfg.to_dict()
            with torch.no_grad():
                a, b = m(tok), m2(tok)
            for x, y in zip(a, b):
                assert torch.equal(x, y)
            # root with `latest`
            root = os.path.dirname(d)
            with open(os.path.join(root, "latest"), "w") as f:
                f.write("step-00000010\n")
            m3 = tc.load_catena(root)
            assert m3.catena_dir == d
            with torch.no_grad():
                for x, y in zip(a, m3(tok)):
                    assert torch.equal(x, y)
            # model.json: chain-major offsets, prefix property
            meta = json.load(open(os.path.join(d, "model.json")))
            assert meta["format"] == "catena-checkpoint" and meta["format_version"] == 1
            off = 0
            for t in meta["tensors"]:
                assert t["offset"] == off
                off += int(np.prod(t["shape"]))
            assert off == m.num_params()
            first1 = next(t for t in meta["tensors"] if t["chain"] == 1)
            assert first1["offset"] == m.num_params(1)
            arr = np.load(os.path.join(d, "params", "layers.1.attn.q.c1.weight.npy"))
            assert arr.dtype == np.dtype("<f4") and arr.flags.c_contiguous
    finally:
        shutil.rmtree(tmp)


def _expect_error(fn, *needles):
    try:
        fn()
    except tc.CatenaFormatError as e:
        msg = str(e)
        for nd in needles:
            assert nd in msg, f"error message {msg!r} lacks {nd!r}"
        return msg
    raise AssertionError("no CatenaFormatError raised")


def test_load_errors_are_clear():
    tmp = tempfile.mkdtemp(prefix="torch_colm_test_")
    try:
        cfg = tiny_cfg()
        m = randomize(tc.ColmModel(cfg))
        d = tc.save_catena(m, os.path.join(tmp, "s"))
        name = "layers.1.ffn.down.c2.weight"
        f = os.path.join(d, "params", name + ".npy")
        good = np.load(f)
        np.save(f, good[:, :-1])                                   # wrong shape
        _expect_error(lambda: tc.load_catena(d), name, str(list(good.shape)),
                      str([good.shape[0], good.shape[1] - 1]))
        np.save(f, good.astype("<f8"))                              # wrong dtype
        _expect_error(lambda: tc.load_catena(d), name, "<f8")
        os.remove(f)                                                # missing
        _expect_error(lambda: tc.load_catena(d), name, "missing")
        np.save(f, good)
        meta = json.load(open(os.path.join(d, "model.json")))
        meta2 = json.loads(json.dumps(meta))
        meta2["tensors"][3]["shape"] = [1, 2]                       # wrong shape in the list
        json.dump(meta2, open(os.path.join(d, "model.json"), "w"))
        _expect_error(lambda: tc.load_catena(d), meta["tensors"][3]["name"], "[1, 2]")
        meta2 = json.loads(json.dumps(meta))
        meta2["tensors"][5]["offset"] += 1                          # wrong offset
        json.dump(meta2, open(os.path.join(d, "model.json"), "w"))
        _expect_error(lambda: tc.load_catena(d), "offset", meta["tensors"][5]["name"])
        json.dump(meta, open(os.path.join(d, "model.json"), "w"))
        np.save(os.path.join(d, "params", "layers.0.attn.k.c9.weight.npy"), good)   # extra file
        _expect_error(lambda: tc.load_catena(d), "layers.0.attn.k.c9.weight")
        os.remove(os.path.join(d, "params", "layers.0.attn.k.c9.weight.npy"))
        tc.load_catena(d)                                           # restored: loads again
        _expect_error(lambda: tc.load_catena(tmp), "latest")        # neither step dir nor root
    finally:
        shutil.rmtree(tmp)


# ----------------------------------------------------------------------------------------------
# (c) masked-dense reference, written independently of torch_colm's forward
# ----------------------------------------------------------------------------------------------

def _dense_masked(weights, in_widths):
    """Block-lower-triangular dense [sum b_i, sum a_j] from per-output-chain W_i [b_i, P_i]."""
    rows = sum(w.shape[0] for w in weights)
    cols = sum(in_widths)
    M = torch.zeros(rows, cols, dtype=torch.float64)
    r = 0
    for w in weights:
        M[r:r + w.shape[0], :w.shape[1]] = w
        r += w.shape[0]
    return M


def dense_reference(model, tokens):
    """Float64 masked-dense CoLM forward with loops over heads and chains; returns logits per scale."""
    cfg = model.cfg
    P = {n: p.detach().double() for n, p in model.named_parameters()}
    n, hd, V = cfg.n, cfg.head_dim, cfg.vocab_size
    D, Fw = cfg.widths(), cfg.ffn_widths()
    Dm = sum(D)
    B, T = tokens.shape

    def lin(prefix, in_w, out_n):
        Wd = _dense_masked([P[f"{prefix}.c{i}.weight"] for i in range(out_n)], in_w)
        b = torch.cat([P[f"{prefix}.c{i}.bias"] for i in range(out_n)]) if cfg.bias else 0.0
        return lambda x: x @ Wd.T + b

    def norm(prefix, x):
        outs, o = [], 0
        for i in range(n):
            xi = x[..., o:o + D[i]]
            o += D[i]
            g = P[f"{prefix}.c{i}.gain"]
            if cfg.norm == "layernorm":
                mu = xi.mean(-1, keepdim=True)
                var = ((xi - mu) ** 2).mean(-1, keepdim=True)
                outs.append((xi - mu) / torch.sqrt(var + cfg.norm_eps) * g + P[f"{prefix}.c{i}.bias"])
            else:
                outs.append(xi / torch.sqrt((xi ** 2).mean(-1, keepdim=True) + cfg.norm_eps) * g)
        return torch.cat(outs, -1)

    def rope(x):   # x [B, T, hd]: pairs (m, m+h) rotated as complex numbers
        h = hd // 2
        t = torch.arange(T, dtype=torch.float64)[:, None]
        inv = torch.tensor([cfg.rope_theta ** (-2.0 * m / hd) for m in range(h)], dtype=torch.float64)
        z = torch.complex(x[..., :h], x[..., h:]) * torch.polar(torch.ones(T, h, dtype=torch.float64), t * inv)
        return torch.cat([z.real, z.imag], -1)

    def gelu_tanh(x):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))

    x = torch.cat([P[f"embed.c{i}"] for i in range(n)], 1)[tokens]           # [B, T, D]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(cfg.layers):
        p = f"layers.{l}"
        h = norm(f"{p}.norm1", x)
        q = lin(f"{p}.attn.q", D, n)(h)
        if cfg.variant == "colm-air":
            kw = [cfg.kv_heads * hd]
            k = lin(f"{p}.attn.k", [D[0]], 1)(h[..., :D[0]])
            v = lin(f"{p}.attn.v", [D[0]], 1)(h[..., :D[0]])
        else:
            k = lin(f"{p}.attn.k", D, n)(h)
            v = lin(f"{p}.attn.v", D, n)(h)
        heads = []
        for j in range(cfg.heads):
            kvj = j % cfg.kv_heads if cfg.variant == "colm-air" else j
            qj = rope(q[..., j * hd:(j + 1) * hd])
            kj = rope(k[..., kvj * hd:(kvj + 1) * hd])
            vj = v[..., kvj * hd:(kvj + 1) * hd]
            s = qj @ kj.transpose(-1, -2) / math.sqrt(hd)
            s = s.masked_fill(~causal, float("-inf"))
            heads.append(torch.softmax(s, -1) @ vj)
        x = x + lin(f"{p}.attn.o", D, n)(torch.cat(heads, -1))
        h = norm(f"{p}.norm2", x)
        up = lin(f"{p}.ffn.up", D, n)(h)
        if cfg.activation == "swiglu":
            gt = lin(f"{p}.ffn.gate", D, n)(h)
            a = gt * torch.sigmoid(gt) * up
        else:
            a = gelu_tanh(up)
        x = x + lin(f"{p}.ffn.down", Fw, n)(a)
    h = norm("norm_f", x)
    Wh = torch.cat([P[f"head.c{i}"] for i in range(n)], 0)                   # [D, V]
    out, pk = [], 0
    for k_ in range(n):
        pk += D[k_]
        out.append(h[..., :pk] @ Wh[:pk])
    return out


def test_masked_dense_equivalence():
    for variant, act, norm in all_combos():
        cfg = tiny_cfg(variant, act, norm)
        m = randomize(tc.ColmModel(cfg), seed=3).double()
        tok = tokens_for(cfg)
        with torch.no_grad():
            got = m(tok)
            ref = dense_reference(m, tok)
        for s, (g, r) in enumerate(zip(got, ref)):
            err = (g - r).abs().max().item()
            assert err < 1e-10 * max(1.0, r.abs().max().item()), \
                f"{variant}/{act}/{norm} scale {s + 1}: max abs diff {err}"
    cfg = tiny_cfg("colm-air", "swiglu", "layernorm", chains=(2, 4, 2), kv_heads=2)
    m = randomize(tc.ColmModel(cfg), seed=4).double()
    tok = tokens_for(cfg, T=16)
    with torch.no_grad():
        for g, r in zip(m(tok), dense_reference(m, tok)):
            assert (g - r).abs().max().item() < 1e-10 * max(1.0, r.abs().max().item())


def test_float32_matches_float64():
    """The contract's float32 tolerance (1e-4) holds against float64 on the same parameters."""
    cfg = tiny_cfg("colm", "gelu", "layernorm")
    m = randomize(tc.ColmModel(cfg), seed=5, std=0.1)
    tok = tokens_for(cfg, T=16)
    with torch.no_grad():
        a = m(tok)
        b = m.double()(tok)
    for x, y in zip(a, b):
        assert (x.double() - y).abs().max().item() < 1e-4


# ----------------------------------------------------------------------------------------------
# loss and (d) gradient check
# ----------------------------------------------------------------------------------------------

def test_multiscale_loss():
    cfg = tiny_cfg(loss_weights=[0.2, 0.3, 0.5])
    m = randomize(tc.ColmModel(cfg), seed=6)
    tok = tokens_for(cfg, T=9)
    with torch.no_grad():
        loss, per = m.lm_loss(tok)
        logits = m(tok[:, :-1])
        manual = []
        for lk in logits:
            lp = torch.log_softmax(lk.double(), -1)
            manual.append(-lp.gather(-1, tok[:, 1:, None]).mean())
        want = sum(w * c for w, c in zip([0.2, 0.3, 0.5], manual))
        assert abs(loss.item() - want.item()) < 1e-5, (loss.item(), want.item())
        for p_, mm in zip(per, manual):
            assert abs(p_.item() - mm.item()) < 1e-5
        m.cfg.loss_weights = "full-only"
        loss2, per2 = m.lm_loss(tok)
        assert per2[0] is None and per2[1] is None
        assert abs(loss2.item() - manual[2].item()) < 1e-5


class _LossOf(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, tokens):
        return self.m.lm_loss(tokens)[0]


def test_gradcheck_loss():
    from torch.nn.utils.stateless import functional_call
    for variant, act, norm in [("colm", "gelu", "layernorm"), ("colm-air", "swiglu", "rmsnorm")]:
        cfg = tc.ColmConfig.from_dict(dict(
            vocab_size=7, head_dim=4, chains=[1, 2], layers=1, kv_heads=1 if variant == "colm-air" else None,
            ffn_mult=1, activation=act, norm=norm, norm_eps=1e-5, rope_theta=100.0, variant=variant,
            max_seq_len=8, bias=True, loss_weights=[0.3, 0.7]))
        m = randomize(tc.ColmModel(cfg), seed=8, std=0.5).double()
        wrap = _LossOf(m)
        tok = torch.tensor([[1, 5, 2, 6, 0], [3, 3, 4, 1, 6]])
        names = [n for n, _ in wrap.named_parameters()]
        vals = tuple(p.detach().clone().requires_grad_(True) for _, p in wrap.named_parameters())

        def f(*ps):
            return functional_call(wrap, dict(zip(names, ps)), (tok,))

        assert torch.autograd.gradcheck(f, vals, eps=1e-6, atol=1e-7, rtol=1e-5), variant


# ----------------------------------------------------------------------------------------------

def main():
    tests = [(n, fn) for n, fn in sorted(globals().items()) if n.startswith("test_") and callable(fn)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            passed += 1
            print(f"PASS {name}", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {name}", flush=True)
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

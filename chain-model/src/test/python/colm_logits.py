"""Logits of every scale from a Catena checkpoint, computed by the independent PyTorch model.

  /usr/bin/python3 colm_logits.py --ckpt DIR --tokens tokens.npy --out OUTDIR

DIR is a step directory or a checkpoint root with a `latest` file. tokens.npy is int32/int64 [B, T].
Writes OUTDIR/logits_k{k}.npy (float32 [B, T, V]) for k = 1..n and prints one JSON line.
float32, CPU, 2 threads. With --elastic each scale k is computed by the k-chain sub-model alone
(forward(tokens, k)); by default one full pass yields all scales (the running sum over chains). With
--bf16-operands, Catena's precision=bf16 emulated (torch_colm.GEMM_OPERANDS).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_colm as tc  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--elastic", action="store_true", help="compute scale k with forward(tokens, k)")
    ap.add_argument("--bf16-operands", action="store_true",
                    help="emulate Catena's precision=bf16: both operands of every linear and of the attention core's products rounded to bf16, fp32 products")
    ap.add_argument("--strict-order", action="store_true",
                    help="fail (not warn) when model.json's tensor order differs from ours")
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    if a.bf16_operands:
        tc.GEMM_OPERANDS["round"] = tc.round_to_bf16
    t0 = time.perf_counter()
    model = tc.load_catena(a.ckpt, dtype=torch.float32, strict_order=a.strict_order)
    cfg = model.cfg

    tok = np.load(a.tokens, allow_pickle=False)
    if tok.dtype not in (np.int32, np.int64):
        raise SystemExit(f"colm_logits: {a.tokens}: tokens must be int32 or int64, found {tok.dtype}")
    if tok.ndim != 2:
        raise SystemExit(f"colm_logits: {a.tokens}: tokens must be [B, T], found shape {list(tok.shape)}")
    if tok.size and (tok.min() < 0 or tok.max() >= cfg.vocab_size):
        raise SystemExit(f"colm_logits: token ids must be in [0, {cfg.vocab_size}), found "
                         f"[{tok.min()}, {tok.max()}]")
    if tok.shape[1] > cfg.max_seq_len:
        raise SystemExit(f"colm_logits: T = {tok.shape[1]} exceeds max_seq_len {cfg.max_seq_len}")
    tokens = torch.from_numpy(tok.astype(np.int64))

    t1 = time.perf_counter()
    with torch.inference_mode():
        if a.elastic:
            logits = [model(tokens, k=k)[k - 1] for k in range(1, cfg.n + 1)]
        else:
            logits = model(tokens)
    t2 = time.perf_counter()

    os.makedirs(a.out, exist_ok=True)
    files, nll = [], []
    tgt = tokens[:, 1:]
    for k, lk in enumerate(logits, start=1):
        arr = lk.contiguous().numpy().astype("<f4", copy=False)
        path = os.path.join(a.out, f"logits_k{k}.npy")
        np.save(path, arr)
        files.append(path)
        if tokens.shape[1] > 1:   # mean next-token NLL, a sanity number
            lp = torch.log_softmax(lk[:, :-1].double(), -1)
            nll.append(round(-lp.gather(-1, tgt[..., None]).mean().item(), 6))
    print(json.dumps({
        "ckpt": os.path.abspath(model.catena_dir),
        "step": (model.catena_meta.get("trainer") or {}).get("step"),
        "variant": cfg.variant, "chains": cfg.chains, "vocab_size": cfg.vocab_size,
        "tokens_shape": list(tok.shape), "scales": cfg.n, "elastic": a.elastic,
        "files": files, "next_token_nll": nll,
        "load_s": round(t1 - t0, 3), "forward_s": round(t2 - t1, 3),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()

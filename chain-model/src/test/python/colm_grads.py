"""Gradients of every parameter and one AdamW step from a Catena checkpoint, by the independent PyTorch model.

  /usr/bin/python3 colm_grads.py --ckpt DIR --windows windows.npy --optim optim.json --out OUTDIR

windows.npy is int32/int64 [B, T+1]: inputs windows[:, :-1], next-token targets windows[:, 1:]. The loss is the
model's multi-chain loss (sum_k w_k * mean CE_k, the checkpoint's loss weights), differentiated by autograd.
optim.json: {"lr", "beta1", "beta2", "eps", "weight_decay", "clip_norm", "decayed": [tensor names]} — the first
step from zero moments is taken by torch.optim.AdamW (two parameter groups: decayed and not) after torch's clip_grad_norm_, i.e.
PyTorch's own optimizer, not a copy of Catena's. Writes OUTDIR/grad/<name>.npy (the unclipped gradient),
OUTDIR/after/<name>.npy (the parameter after the step) and prints one JSON line (losses, gradient norm).
float32, CPU.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_colm as tc  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--windows", required=True)
    ap.add_argument("--optim", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    model = tc.load_catena(a.ckpt, dtype=torch.float32, warn=False)  # names and shapes checked; see colm_logits.py on order
    model.train()
    opt_cfg = json.load(open(a.optim))
    windows = torch.from_numpy(np.load(a.windows, allow_pickle=False).astype(np.int64))

    params = dict(model.named_parameters())
    model.zero_grad(set_to_none=True)
    loss, per = model.lm_loss(windows)
    loss.backward()
    os.makedirs(os.path.join(a.out, "grad"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "after"), exist_ok=True)
    for name, p in params.items():
        np.save(os.path.join(a.out, "grad", name + ".npy"), p.grad.detach().numpy().astype("<f4"))

    decayed = set(opt_cfg["decayed"])
    unknown = decayed - set(params)
    if unknown:
        raise SystemExit(f"optim.json names tensors the model does not have: {sorted(unknown)}")
    groups = [{"params": [p for n, p in params.items() if n in decayed], "weight_decay": opt_cfg["weight_decay"]},
              {"params": [p for n, p in params.items() if n not in decayed], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=opt_cfg["lr"], betas=(opt_cfg["beta1"], opt_cfg["beta2"]), eps=opt_cfg["eps"])
    norm = torch.nn.utils.clip_grad_norm_(list(params.values()), opt_cfg["clip_norm"]) if opt_cfg["clip_norm"] > 0 \
        else torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params.values()))
    opt.step()
    for name, p in params.items():
        np.save(os.path.join(a.out, "after", name + ".npy"), p.detach().numpy().astype("<f4"))
    print(json.dumps({"loss": float(loss), "losses": [None if x is None else float(x) for x in per],
                      "grad_norm": float(norm), "tensors": len(params)}))


if __name__ == "__main__":
    main()

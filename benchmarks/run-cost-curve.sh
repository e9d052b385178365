#!/usr/bin/env bash
# Cost-growth curve (issue 15 item 3): training tokens/s and peak RSS of Catena and the PyTorch peer at
# T = 128, 512, 1024, 2048 with the same tokens per step (B = TOKENS / T), at three model widths.
#   benchmarks/run-cost-curve.sh [ROUNDS=1]
#     -> benchmarks/results/cost-curve.jsonl (raw lines), cost-curve.json (per cell), cost-curve.png, a markdown table
# The model is builtin:small's architecture (vocab 8192, chains 2,2,2,2, SwiGLU, RMSNorm, no bias, FFN 2.75x, CoLM) at
# head_dim 32 / 64 / 96 (d 256 / 512 / 768; 768 is small's own width) with LAYERS blocks (default 4, small has 8) so
# the curve fits in ~25 minutes on 2 cores. Each cell is one process per engine (peak RSS = VmHWM of that process
# alone), engines alternating (the order swapped every cell), WARMUP untimed + STEPS timed fp32 training steps
# (forward, backward, clip, AdamW), median step. Catena: io.catena.bench.CostCurveBench (the recipe's model, the local
# trainer's step); PyTorch: benchmarks/python/bench_train.py on the same config (printed by CostCurveBench
# --config-only), 2 threads, its best settings on this host (see its docstring).
# Environment: TOKENS (4096), STEPS (3), WARMUP (1), LAYERS (4), SEQS ("128 512 1024 2048"), HEAD_DIMS ("32 64 96"),
# SKIP_BUILD=1, PLOT_ONLY=1 (only re-summarise cost-curve.jsonl).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${1:-1}"
TOKENS="${TOKENS:-4096}"; STEPS="${STEPS:-3}"; WARMUP="${WARMUP:-1}"; LAYERS="${LAYERS:-4}"
SEQS="${SEQS:-128 512 1024 2048}"; HEAD_DIMS="${HEAD_DIMS:-32 64 96}"
OUT="$ROOT/benchmarks/results"
RAW="$OUT/cost-curve.jsonl"
if [[ "${PLOT_ONLY:-0}" != 1 ]]; then
  source "$ROOT/benchmarks/bench-build.sh"
  # both engines as a user's host runs them: without this box's OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE; Catena picks its
  # kernel (NativeSetup), the peer gets the same one through CATENA_HOST_CORETYPE (bench-build.sh)
  CLEAN=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
  # a d 768 model at 4096 tokens per step holds ~1.6 GB of activations off-heap: lift JavaCPP's default cap (the -Xmx)
  JAVA=("${CLEAN[@]}" "${BENCH_JVM[@]}" -Dorg.bytedeco.javacpp.maxbytes=8g -Dorg.bytedeco.javacpp.maxphysicalbytes=12g
        -cp "$CP" io.catena.bench.CostCurveBench --recipe builtin:small)
  PY=("${CLEAN[@]}" /usr/bin/python3 "$ROOT/benchmarks/python/bench_train.py" --threads 2)
  echo "host: $(java -cp "$CP" io.catena.model.kernel.HostCpu | tr '\n' ';')" >&2
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  : > "$RAW"
  cell=0
  for r in $(seq 1 "$ROUNDS"); do
    for hd in $HEAD_DIMS; do
      for T in $SEQS; do
        set_="head_dim=$hd;layers=$LAYERS"
        B=$(( TOKENS / T ))
        cfg="$(java -cp "$CP" io.catena.bench.CostCurveBench --recipe builtin:small --set "$set_" --seq "$T" --tokens "$TOKENS" \
                --config-only true)"
        engines="catena torch"
        (( cell % 2 == 1 )) && engines="torch catena"
        cell=$(( cell + 1 ))
        for e in $engines; do
          load="$(cut -d' ' -f1 /proc/loadavg)"
          echo "round $r/$ROUNDS head_dim $hd T $T B $B: $e (load $load)" >&2
          tag="{\"run\":\"$e\",\"round\":$r,\"head_dim\":$hd,\"seq\":$T,\"batch\":$B,\"load1_before\":$load,"
          if [[ $e == catena ]]; then
            line="$("${JAVA[@]}" --set "$set_" --seq "$T" --tokens "$TOKENS" --steps "$STEPS" --warmup "$WARMUP" 2>/dev/null \
                    | grep '^{' | tail -1 || true)"
          else
            line="$("${PY[@]}" --steps "$STEPS" --warmup "$WARMUP" --batch "$B" --seq "$T" --config "$cfg" 2>/dev/null \
                    | grep '^{' | tail -1 || true)"
          fi
          [[ -n "$line" ]] || line='{"failed":true}'
          echo "${tag}\"load1_after\":$(cut -d' ' -f1 /proc/loadavg),${line#\{}" >> "$RAW"
        done
      done
    done
  done
fi
/usr/bin/python3 - "$OUT" "$TOKENS" "$LAYERS" <<'PYEOF'
import json, sys, statistics, subprocess, datetime
out, tokens, layers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = [json.loads(l) for l in open(f"{out}/cost-curve.jsonl") if l.strip()]
cells = sorted({(r["head_dim"], r["seq"]) for r in rows})
def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None
def get(run, hd, T, key):
    return med([r.get(key) for r in rows if r["run"] == run and r["head_dim"] == hd and r["seq"] == T and not r.get("failed")])
summary = []
for hd, T in cells:
    c = dict(head_dim=hd, d_model=hd * 8, seq=T, batch=tokens // T,
             catena_tokens_per_s=get("catena", hd, T, "tokens_per_s"), torch_tokens_per_s=get("torch", hd, T, "tokens_per_s"),
             catena_peak_rss_mb=get("catena", hd, T, "peak_rss_mb"), torch_peak_rss_mb=get("torch", hd, T, "peak_rss_mb"),
             catena_ms_per_step=get("catena", hd, T, "ms_per_step"), torch_ms_per_step=get("torch", hd, T, "ms_per_step"),
             params=get("catena", hd, T, "params"), torch_params=get("torch", hd, T, "params"),
             catena_other_cpu_s=get("catena", hd, T, "other_procs_cpu_s_during_timed"),
             catena_timed_wall_s=get("catena", hd, T, "timed_wall_s"),
             torch_other_cpu_s=get("torch", hd, T, "other_procs_cpu_s_during_timed"),
             torch_timed_wall_s=get("torch", hd, T, "timed_wall_s"),
             load1=med([r.get("load1_before") for r in rows if r["head_dim"] == hd and r["seq"] == T]))
    ct, tt = c["catena_tokens_per_s"], c["torch_tokens_per_s"]
    c["throughput_ratio"] = ct / tt if ct and tt else None
    cr, trr = c["catena_peak_rss_mb"], c["torch_peak_rss_mb"]
    c["rss_ratio"] = cr / trr if cr and trr else None
    summary.append(c)
cat = next((r for r in rows if r["run"] == "catena" and not r.get("failed")), {})
tor = next((r for r in rows if r["run"] == "torch" and not r.get("failed")), {})
res = {
    "date": datetime.datetime.utcnow().isoformat(timespec="seconds") + "Z",
    "cpu": subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip(),
    "cores": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
    "tokens_per_step": tokens, "layers": layers, "rounds": max([r["round"] for r in rows] or [0]),
    "steps": cat.get("steps"), "warmup": cat.get("warmup"),
    "model": "builtin:small architecture (vocab 8192, chains 2,2,2,2, swiglu, rmsnorm, no bias, ffn 2.75, colm), "
             f"{layers} layers, head_dim 32/64/96 = d 256/512/768",
    "catena_native": cat.get("native"), "catena_attention": cat.get("attention"), "catena_kernel_threads": cat.get("kernel_threads"),
    "torch_version": tor.get("torch"), "torch_threads": tor.get("torch_num_threads"),
    "torch_blas": (tor.get("blas") or {}).get("openblas_config"), "torch_openblas_kernel": (tor.get("blas") or {}).get("openblas_corename"),
    "torch_gemm_peak_gflops": tor.get("gemm_peak_gflops"),
    "cells": summary,
}
json.dump(res, open(f"{out}/cost-curve.json", "w"), indent=2)
f = lambda x, d=0: "n/a" if x is None else f"{x:,.{d}f}"
print(f"| d (head_dim) | T | B | params | Catena tok/s | PyTorch tok/s | ratio | Catena peak RSS MB | PyTorch peak RSS MB | RSS ratio | load1 | others' CPU s / timed s (Catena; PyTorch) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for c in summary:
    print(f"| {c['d_model']} ({c['head_dim']}) | {c['seq']} | {c['batch']} | {f(c['params'] and c['params'] / 1e6, 1)}M | {f(c['catena_tokens_per_s'])} "
          f"| {f(c['torch_tokens_per_s'])} | **{f(c['throughput_ratio'], 2)}x** | {f(c['catena_peak_rss_mb'])} | {f(c['torch_peak_rss_mb'])} "
          f"| {f(c['rss_ratio'], 2)}x | {f(c['load1'], 1)} | {f(c['catena_other_cpu_s'], 1)} / {f(c['catena_timed_wall_s'], 1)}; "
          f"{f(c['torch_other_cpu_s'], 1)} / {f(c['torch_timed_wall_s'], 1)} |")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib missing (Debian python3-matplotlib): no PNG", file=sys.stderr)
    sys.exit(0)
fig, ax = plt.subplots(1, 3, figsize=(16, 4.8))
colors = {32: "tab:blue", 64: "tab:orange", 96: "tab:green"}
for hd in sorted({c["head_dim"] for c in summary}):
    cs = [c for c in summary if c["head_dim"] == hd]
    T = [c["seq"] for c in cs]
    col = colors.get(hd)
    for eng, style, name in (("catena", "-o", "Catena"), ("torch", "--s", "PyTorch")):
        ax[0].plot(T, [c[f"{eng}_tokens_per_s"] for c in cs], style, color=col, label=f"{name} d {hd * 8}")
        ax[1].plot(T, [c[f"{eng}_peak_rss_mb"] for c in cs], style, color=col, label=f"{name} d {hd * 8}")
    ax[2].plot(T, [c["throughput_ratio"] for c in cs], "-o", color=col, label=f"d {hd * 8}")
ax[2].axhline(1.2, color="red", lw=1, ls=":", label="target 1.2x")
ax[2].axhline(1.0, color="gray", lw=0.8)
for a, t, yl in ((ax[0], "training tokens/s (fp32)", "tokens/s"), (ax[1], "peak RSS", "MB"),
                 (ax[2], "tokens/s ratio Catena / PyTorch", "ratio")):
    a.set_xscale("log", base=2)
    a.set_xticks([128, 512, 1024, 2048])
    a.set_xticklabels(["128", "512", "1024", "2048"])
    a.set_xlabel(f"T (B x T = {tokens} tokens per step)")
    a.set_title(t)
    a.set_ylabel(yl)
    a.grid(alpha=0.3)
ax[0].set_yscale("log")
ax[0].legend(fontsize=7)
ax[1].legend(fontsize=7)
ax[2].legend(fontsize=7)
fig.suptitle(f"Cost growth, {res['model']}; {res['cpu']}, {res['cores']} cores; {res['date']}", fontsize=9)
fig.tight_layout()
fig.savefig(f"{out}/cost-curve.png", dpi=110)
print(f"wrote {out}/cost-curve.json, {out}/cost-curve.png", file=sys.stderr)
PYEOF

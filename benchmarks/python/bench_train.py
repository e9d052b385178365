"""Training-step benchmark of the PyTorch CoLM peer (and a chain-linear micro-benchmark).

  /usr/bin/python3 bench_train.py --steps 30 --warmup 5 --threads 2 [--config JSON|@file]
  /usr/bin/python3 bench_train.py --chain-linear-bench --threads 2

Default model = the reference model: vocab 4096, head_dim 64, chains [2,2] (D 256, 4 heads),
4 layers, FFN 1024 (ffn_mult 4), gelu, layernorm, colm, bias, loss_weights [0.5, 0.5]; B 16, T 128.
Random tokens (seeded); next-token loss on [B, T+1] windows (T predicted positions per row).
AdamW lr 3e-4, weight decay 0.1 (all parameters), betas 0.9/0.95, eps 1e-8; grad-norm clip 1.0.
A timed step = zero_grad(set_to_none) + forward + loss + backward + clip + optimizer step + loss.item().
Prints ONE JSON line. The machine may be shared: the JSON also reports the CPU time other processes
used during the timed steps, and the median over "clean" steps (other processes < 5% of a core).

OpenBLAS kernel: OpenBLAS reads OPENBLAS_CORETYPE when torch is imported, so this script decides it
first. --coretype auto (default): the kernel Catena's own detection chooses for this CPU
(io.catena.model.kernel.HostCpu, passed in CATENA_HOST_CORETYPE by benchmarks/bench-build.sh), so the peer
runs the same fast kernel Catena does; without that variable, keep what the environment says (unset =
OpenBLAS's own detection, which misses current Xeons and Zen 5). The JSON reports what was seen, what was
used, the kernel OpenBLAS actually runs and the GEMM GFLOP/s it reached (gemm_peak_gflops).

Peer configuration (chosen before torch loads; the script re-executes itself once with the
environment below, and the JSON reports each choice; --blas system --malloc default gives a plain run):
  --blas auto (default): use Debian's OpenMP build of OpenBLAS (libopenblas0-openmp, via
      LD_LIBRARY_PATH) when installed. torch parallelises its own ops with OpenMP; the pthread build
      adds a second, spinning thread pool, which on 2 cores oversubscribes the CPU (measured on this
      box: ~1.1-1.4 s/step with pthread vs ~0.5 s/step with the OpenMP build, same kernel).
  --malloc tuned (default): glibc keeps freed memory (MALLOC_MMAP_THRESHOLD_=1 GiB,
      MALLOC_TRIM_THRESHOLD_=4 GiB) instead of mmap/munmap per large tensor, so a step does not
      page-fault on every fresh activation/gradient buffer (PyTorch's CPU allocator has no cache).
"""
import argparse
import json
import os
import sys
import time

DEFAULT_CONFIG = dict(vocab_size=4096, head_dim=64, chains=[2, 2], layers=4, kv_heads=None, ffn_mult=4,
                      activation="gelu", norm="layernorm", norm_eps=1e-5, rope_theta=10000.0,
                      variant="colm", max_seq_len=128, bias=True, loss_weights=[0.5, 0.5])


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", default=None,
                    help="JSON object (or @path to one) overriding keys of the default model config")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128, help="T, predicted positions per row")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--foreach", choices=("auto", "on", "off"), default="auto",
                    help="AdamW multi-tensor implementation (auto = torch's default)")
    ap.add_argument("--coretype", default="auto",
                    help="auto | keep | <OpenBLAS core name> (see module doc)")
    ap.add_argument("--blas", choices=("auto", "openmp", "system"), default="auto",
                    help="auto/openmp: OpenBLAS OpenMP build via LD_LIBRARY_PATH; system: as installed")
    ap.add_argument("--malloc", choices=("tuned", "default"), default="tuned")
    ap.add_argument("--chain-linear-bench", action="store_true",
                    help="time fwd+bwd of a chain linear [1,1,1,1] 1024->1024 vs dense, 2048 rows")
    ap.add_argument("--reps", type=int, default=30, help="timed reps of --chain-linear-bench")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                    help="first wait up to S seconds for the machine to be idle (>= 95%% idle over 2 s)")
    return ap.parse_args(argv)


OPENMP_BLAS_DIR = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
ARGS = parse_args()


def _peer_environment():
    """Environment for the measuring process; re-exec once so the loader and glibc see it."""
    if os.environ.get("_CATENA_PEER_CHILD") == "1":
        return
    env = dict(os.environ)
    env["_CATENA_PEER_CHILD"] = "1"
    env["_CATENA_CORETYPE_SEEN"] = os.environ.get("OPENBLAS_CORETYPE", "<unset>")
    if ARGS.coretype == "auto":
        if os.environ.get("CATENA_HOST_CORETYPE"):
            env["OPENBLAS_CORETYPE"] = os.environ["CATENA_HOST_CORETYPE"]
    elif ARGS.coretype != "keep":
        env["OPENBLAS_CORETYPE"] = ARGS.coretype
    env["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)
    if ARGS.blas in ("auto", "openmp"):
        if os.path.isfile(os.path.join(OPENMP_BLAS_DIR, "libblas.so.3")):
            env["LD_LIBRARY_PATH"] = OPENMP_BLAS_DIR + (
                ":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
        elif ARGS.blas == "openmp":
            sys.exit(f"bench_train: --blas openmp needs {OPENMP_BLAS_DIR} (apt-get install libopenblas0-openmp)")
    if ARGS.malloc == "tuned":
        env["MALLOC_MMAP_THRESHOLD_"] = str(1 << 30)
        env["MALLOC_TRIM_THRESHOLD_"] = str(1 << 32)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)


_peer_environment()
_seen = os.environ.get("_CATENA_CORETYPE_SEEN", "<unset>")
CORETYPE_SEEN = None if _seen == "<unset>" else _seen
CORETYPE_USED = os.environ.get("OPENBLAS_CORETYPE")
L2_SEEN = os.environ.get("OPENBLAS_L2_SIZE")

import ctypes  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

# the PyTorch oracle lives with the engine's golden tests
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "chain-model", "src", "test", "python"))
import torch_colm as tc  # noqa: E402


def blas_info(threads):
    """Which BLAS torch really calls (libraries mapped in this process) and OpenBLAS's kernel."""
    torch.ones(8, 8) @ torch.ones(8, 8)  # make sure the BLAS is loaded
    libs = sorted({ln.split()[-1] for ln in open("/proc/self/maps")
                   if ("blas" in ln.lower() or "mkl" in ln.lower()) and "/" in ln})
    info = {"libs": libs, "torch_blas_info": None}
    for part in torch.__config__.show().replace(",", "\n").splitlines():
        if "BLAS_INFO" in part:
            info["torch_blas_info"] = part.strip()
    for p in libs:
        try:
            lib = ctypes.CDLL(p)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
        except (OSError, AttributeError):
            continue
        lib.openblas_set_num_threads(threads)
        info.update(openblas_corename=lib.openblas_get_corename().decode(),
                    openblas_config=lib.openblas_get_config().decode(),
                    openblas_threads=lib.openblas_get_num_threads())
        break
    return info


def gemm_peak_gflops(n=2048, reps=5):
    """Best of reps timed n^3 float32 torch.mm (as TrainBench's gemm_peak_gflops): the GEMM speed this peer reaches."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(reps))
    return round(2.0 * n ** 3 / best / 1e9, 1)


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB


def useful_mflop_per_token(cfg, T):
    """Training FLOPs per token actually needed: 6 x (chain-linear + LM-head weights) + causal-free
    attention 12*T*D*L (QK^T and PV over all T, fwd 4TD, x3 for training). Embedding lookup free."""
    w = sum(int(np.prod(s)) for n, s, _ in tc.tensor_specs(cfg) if n.endswith(".weight") or n.startswith("head."))
    return (6 * w + 12 * T * cfg.d_model * cfg.layers) / 1e6


def common_fields(threads):
    return {
        "torch": torch.__version__, "threads": threads, "torch_num_threads": torch.get_num_threads(),
        "blas": blas_info(threads),
        "OPENBLAS_CORETYPE_seen": CORETYPE_SEEN, "OPENBLAS_CORETYPE_used": CORETYPE_USED,
        "OPENBLAS_L2_SIZE_seen": L2_SEEN, "blas_choice": ARGS.blas, "malloc": ARGS.malloc,
        "malloc_env": {k: os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")},
        "cpu": _cpu_model(), "nproc": os.cpu_count(),
    }


def _cpu_model():
    try:
        for ln in open("/proc/cpuinfo"):
            if ln.startswith("model name"):
                return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _box_busy_s():
    """CPU seconds the whole machine spent busy (from /proc/stat), to detect other load."""
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def bench_train(a):
    cfgd = dict(DEFAULT_CONFIG)
    if a.config:
        text = open(a.config[1:]).read() if a.config.startswith("@") else a.config
        cfgd.update(json.loads(text))
    cfgd["max_seq_len"] = max(int(cfgd.get("max_seq_len", a.seq)), a.seq)
    if cfgd.get("loss_weights") is not None and not isinstance(cfgd["loss_weights"], str) \
            and len(cfgd["loss_weights"]) != len(cfgd["chains"]):
        cfgd["loss_weights"] = None     # chains overridden without weights: default 1/n
    cfg = tc.ColmConfig.from_dict(cfgd, warn=False)
    info = common_fields(a.threads)

    g = torch.Generator().manual_seed(a.seed)
    model = tc.ColmModel(cfg)
    model.init_weights(generator=g)
    model.train()
    foreach = {"auto": None, "on": True, "off": False}[a.foreach]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=0.1, foreach=foreach)
    total = a.warmup + a.steps
    data = torch.randint(0, cfg.vocab_size, (total, a.batch, a.seq + 1), generator=g)
    params = list(model.parameters())

    times, losses, others = [], [], []
    torch.set_grad_enabled(True)
    for s in range(total):
        if s == a.warmup:
            busy0, own0, wall0 = _box_busy_s(), _own_cpu_s(), time.perf_counter()
        b0, o0 = _box_busy_s(), _own_cpu_s()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss, _ = model.lm_loss(data[s])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        lv = loss.item()
        dt = time.perf_counter() - t0
        losses.append(lv)
        if s >= a.warmup:
            times.append(dt)
            others.append((_box_busy_s() - b0) - (_own_cpu_s() - o0))
    other = (_box_busy_s() - busy0) - (_own_cpu_s() - own0)
    wall = time.perf_counter() - wall0
    med = statistics.median(times)
    # steps during which other processes used < 5% of a core (jiffy resolution: 10 ms)
    clean = [t for t, o in zip(times, others) if o < max(0.05 * t, 0.02)]
    tok = a.batch * a.seq
    mf = useful_mflop_per_token(cfg, a.seq)
    out = {
        "bench": "train_step", "engine": "pytorch", "config": cfg.to_dict(), "batch": a.batch,
        "seq": a.seq, "steps": a.steps, "warmup": a.warmup, "params": model.num_params(),
        "ms_per_step": round(med * 1e3, 2), "ms_mean": round(statistics.mean(times) * 1e3, 2),
        "ms_min": round(min(times) * 1e3, 2), "ms_max": round(max(times) * 1e3, 2),
        "tokens_per_s": round(tok / med, 1), "useful_mflop_per_token": round(mf, 2),
        "useful_gflop_per_s": round(mf * tok / med / 1e3, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "gemm_peak_gflops": gemm_peak_gflops(),
        "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4),
        "adamw_foreach": a.foreach,
        "own_cpu_per_wall": round((_own_cpu_s() - own0) / wall, 2),
        "other_procs_cpu_s_during_timed": round(other, 2), "timed_wall_s": round(wall, 2),
        "clean_steps": len(clean),
        "ms_per_step_clean": round(statistics.median(clean) * 1e3, 2) if clean else None,
        "tokens_per_s_clean": round(tok / statistics.median(clean), 1) if clean else None,
    }
    out.update(info)
    print(json.dumps(out))


def bench_chain_linear(a):
    info = common_fields(a.threads)
    N, widths = 2048, [256, 256, 256, 256]
    g = torch.Generator().manual_seed(a.seed)
    chain = tc.ChainLinear(widths, widths, bias=True)
    dense = nn.Linear(1024, 1024, bias=True)
    with torch.no_grad():
        for p in list(chain.parameters()) + list(dense.parameters()):
            p.normal_(0, 0.02, generator=g)
    x = torch.randn(N, 1024, generator=g).requires_grad_(True)
    gy = torch.randn(N, 1024, generator=g)

    def step(mod):
        t0 = time.perf_counter()
        x.grad = None
        mod.zero_grad(set_to_none=True)
        y = mod(x)
        y.backward(gy)
        return time.perf_counter() - t0

    for _ in range(5):
        step(chain)
        step(dense)
    tc_, td = [], []
    busy0, own0, wall0 = _box_busy_s(), _own_cpu_s(), time.perf_counter()
    for _ in range(a.reps):          # alternate the two so drift hits both equally
        tc_.append(step(chain))
        td.append(step(dense))
    mc, md = statistics.median(tc_), statistics.median(td)
    frac = sum(w * sum(widths[:i + 1]) for i, w in enumerate(widths)) / 1024 ** 2
    dense_flop = 3 * 2 * N * 1024 * 1024
    out = {
        "bench": "chain_linear_fwd_bwd", "rows": N, "in": 1024, "out": 1024, "chains": [1, 1, 1, 1],
        "reps": a.reps, "chain_ms": round(mc * 1e3, 3), "dense_ms": round(md * 1e3, 3),
        "chain_over_dense": round(mc / md, 3), "dense_fraction": frac,
        "chain_useful_gflop_per_s": round(frac * dense_flop / mc / 1e9, 1),
        "dense_gflop_per_s": round(dense_flop / md / 1e9, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "other_procs_cpu_s_during_timed": round((_box_busy_s() - busy0) - (_own_cpu_s() - own0), 2),
        "timed_wall_s": round(time.perf_counter() - wall0, 2),
    }
    out.update(info)
    print(json.dumps(out))


def wait_quiet(limit_s):
    """Wait until other processes leave the machine idle; returns seconds waited (None: gave up)."""
    t0 = time.perf_counter()
    while True:
        v0 = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        time.sleep(2.0)
        v1 = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        d = [b - a for a, b in zip(v0, v1)]
        if sum(d[:8]) and (d[3] + d[4]) >= 0.95 * sum(d[:8]):
            return round(time.perf_counter() - t0, 1)
        if time.perf_counter() - t0 > limit_s:
            return None


def main():
    if ARGS.wait_quiet > 0:
        waited = wait_quiet(ARGS.wait_quiet)
        print(f"bench_train: waited {waited} s for an idle machine" if waited is not None
              else f"bench_train: machine still busy after {ARGS.wait_quiet} s, measuring anyway",
              file=sys.stderr)
    torch.set_num_threads(ARGS.threads)
    if ARGS.chain_linear_bench:
        bench_chain_linear(ARGS)
    else:
        bench_train(ARGS)


if __name__ == "__main__":
    main()

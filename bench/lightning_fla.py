"""The peer a PyTorch user would pick for lightning_bench: flash-linear-attention's
Triton kernel chunk_simple_gla (github.com/fla-org/flash-linear-attention), the
same causal decayed linear attention o_i = Σ_{j≤i} λ_h^{i−j} (q_i·k_j) v_j with
log-decay g_gamma = −slope per head and scale 1, at lightning_bench's shapes
(tnl-1b: 16 heads of 128, batch 1, bf16; fla's layout [B, T, H, d]).

fla is not installable on the GPU machine: its source travels as a folder
(FLA_DIR, default .device/fla; never committed) and is imported from there.
Before timing, its output and gradients are checked against
bench/lightning_torch.py's chunked(), the same block-wise algorithm as
linpar's kernels written with torch ops, in f32 at N = 256 (relative error
below 1e-2; the run stops otherwise). Triton's dot runs f32 inputs in TF32
by default, a 10-bit mantissa: on an H100 the check measured 1.5e-3 on the
output and every gradient (2026-12-07), which a 1e-3 bound refused.

Prints: fla N fwd_ms bwd_ms (or oom), and a `#` line with the check's errors.
Usage: FLA_DIR=.device/fla python3 bench/lightning_fla.py 2048 8192 32768"""
import os
import sys

import torch

sys.path.insert(0, os.environ.get("FLA_DIR", os.path.join(os.path.dirname(__file__), "..", ".device", "fla")))
from fla.ops.simple_gla import chunk_simple_gla  # noqa: E402

from lightning_torch import D, H, chunked, tnl_slopes  # noqa: E402
from torch_timing import median_ms  # noqa: E402


def fla_attention(q, k, v, slopes):
    # q, k, v: [B, H, N, d] (lightning_torch's layout) -> fla's [B, N, H, d] and back.
    o, _ = chunk_simple_gla(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                            g_gamma=-slopes, scale=1.0)
    return o.transpose(1, 2)


def check(slopes, n=256):
    torch.manual_seed(0)
    q, k, v = (0.1 * torch.randn(1, H, n, D, device="cuda") for _ in range(3))
    grad = torch.randn(1, H, n, D, device="cuda")
    errors = []
    outs = []
    for fn in (lambda a, b, c: fla_attention(a, b, c, slopes), lambda a, b, c: chunked(a, b, c, slopes)):
        inputs = [t.clone().requires_grad_(True) for t in (q, k, v)]
        out = fn(*inputs)
        outs.append([out.detach()] + list(torch.autograd.grad(out, inputs, grad)))
    for got, want in zip(*outs):
        errors.append(((got.float() - want.float()).norm() / want.float().norm()).item())
    print("# fla check vs torch_chunked (f32, N=256): relative error out {:.2e} dq {:.2e} dk {:.2e} dv {:.2e}"
          .format(*errors), flush=True)
    if max(errors) > 1e-2:
        sys.exit(f"fla's chunk_simple_gla does not compute lightning attention here: {errors}")


def bench(n, slopes, reps):
    q, k, v = (torch.randn(1, H, n, D, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    grad = torch.randn(1, H, n, D, device="cuda", dtype=torch.bfloat16)
    fwd = median_ms(lambda: fla_attention(q, k, v, slopes), reps, warmup=2)
    out = fla_attention(q, k, v, slopes)
    bwd = median_ms(lambda: torch.autograd.grad(out, (q, k, v), grad, retain_graph=True), reps, warmup=2)
    print(f"fla {n} {fwd:.3f} {bwd:.3f}", flush=True)


if __name__ == "__main__":
    slopes = tnl_slopes()
    check(slopes)
    for n in [int(a) for a in sys.argv[1:]] or [2048, 8192]:
        try:
            bench(n, slopes, 10 if n <= 8192 else 5)
        except torch.OutOfMemoryError:
            print(f"fla {n} oom oom", flush=True)

"""FlashAttention (torch's scaled_dot_product_attention, causal, bf16) on one
GPU over head sizes, sequence lengths and dropout: the rate its kernels reach
as a share of the GPU's bf16 peak, with the FLOPs the simulator's GPT plan
counts for the fused core (sim/softmax_transformer.cpp: causal, half of
4·B·H·N²·d forward, 2.5× that backward). The simulator prices this core by
a curve over head size, length and dropout (sim/op_costs.h,
`softmax_attention`) that scripts/fit_sdpa.py fits to these measurements
(docs/validation.md).

`--shapes grid` (the default) keeps B·H·d = 4096 (a 4096-wide model's
heads, batch 1) over head sizes 64, 96, 128, 2K-8K tokens, with and without
dropout 0.1: what the simulator's FlashAttention curve is fitted to
(sim/op_costs.h). `--shapes held-out` times shapes the fit never saw: head
sizes 160 and 256, 16K and 32K tokens, the few heads of a tensor-parallel
shard, grouped K/V heads, batches over 1, and the shapes of the simulator's
FlashAttention checks (docs/validation.md); `--shapes between` head sizes
the fit interpolates (80, 112, 192) and lengths, batches and head counts
off its points. Each is timed by its kernels
alone (the profiler's kernel durations summed, as bench/gpt_torch.py does),
forward and backward.

Prints one JSON object: {"device", "torch", "peak_tflops", "shapes", "rows":
[{"batch", "head_dim", "heads", "kv_heads", "seq", "dropout", "forward_ms",
"backward_ms", "forward_share", "backward_share", "share"}]}.

usage: python3 bench/sdpa_torch.py [--shapes grid|held-out|between] [--peak-tflops 989.4]
"""
import argparse
import json

import torch
import torch.nn.functional as F

from gpt_torch import kernel_ms


def plan_flops(batch, heads, seq, head_dim):
    """The GPT plan's FLOPs of the fused causal core: forward, backward."""
    forward = 2 * batch * heads * seq * seq * head_dim  # half of 4·B·H·N²·d
    return forward, 2.5 * forward


# (batch, heads, kv_heads, head_dim, seq, dropout)
def grid_shapes():
    return [(1, 4096 // d, 4096 // d, d, n, p) for d in (64, 96, 128) for n in (2048, 4096, 8192)
            for p in (0.0, 0.1)]


HELD_OUT = [
    # head sizes beyond the grid (megatron-530b and -1t have 160)
    (1, 32, 32, 160, 2048, 0.0), (1, 32, 32, 160, 8192, 0.0), (1, 32, 32, 160, 8192, 0.1),
    (1, 16, 16, 256, 2048, 0.0), (1, 16, 16, 256, 8192, 0.0), (1, 16, 16, 256, 8192, 0.1),
    # longer sequences
    (1, 32, 32, 128, 16384, 0.0), (1, 32, 32, 128, 32768, 0.0), (1, 64, 64, 64, 16384, 0.0),
    (1, 32, 32, 128, 16384, 0.1),
    # batches over 1
    (4, 32, 32, 128, 2048, 0.0), (8, 16, 16, 128, 4096, 0.1),
    # tensor-parallel shards: gpt3-175b at tp 8 (12 heads, 2K), llama3-405b at
    # tp 8 (16 heads, one K/V head, 8K), tnl-1b's shape (16 heads, 8K) where
    # the simulator's first FlashAttention share was measured on an H100
    (1, 12, 12, 128, 2048, 0.0), (1, 12, 12, 128, 2048, 0.1), (1, 16, 1, 128, 8192, 0.0),
    (1, 16, 16, 128, 8192, 0.0),
    # grouped K/V at full width: llama3-405b's 128 heads over 8 K/V heads
    (1, 128, 8, 128, 8192, 0.0),
    # the PyTorch GPT of docs/validation.md (megatron-1.7b, micro-batch 4)
    (4, 24, 24, 96, 2048, 0.1), (4, 24, 24, 96, 2048, 0.0),
]


# Between the fit's points: head sizes it interpolates (80, 112, 192),
# lengths off its powers of two, other batch and head counts.
BETWEEN = [
    (1, 48, 48, 80, 4096, 0.0), (1, 48, 48, 80, 8192, 0.1), (2, 36, 36, 112, 4096, 0.0),
    (1, 36, 36, 112, 8192, 0.1), (1, 20, 20, 192, 4096, 0.0), (1, 20, 20, 192, 8192, 0.0),
    (1, 20, 20, 192, 8192, 0.1), (2, 20, 20, 128, 3072, 0.0), (1, 40, 40, 128, 6144, 0.1),
    (1, 24, 24, 128, 12288, 0.0), (3, 16, 4, 128, 5120, 0.0), (2, 40, 40, 64, 6144, 0.0),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peak-tflops", type=float, default=989.4, help="the GPU's dense bf16 peak (H100/H200 SXM)")
    ap.add_argument("--shapes", choices=("grid", "held-out", "between"), default="grid")
    a = ap.parse_args()
    rows = []
    shapes = {"grid": grid_shapes(), "held-out": HELD_OUT, "between": BETWEEN}[a.shapes]
    for batch, heads, kv_heads, head_dim, seq, dropout in shapes:
        leaf = lambda h: torch.randn(batch, h, seq, head_dim, device="cuda", dtype=torch.bfloat16,
                                     requires_grad=True)
        q, k, v = leaf(heads), leaf(kv_heads), leaf(kv_heads)
        core = lambda: F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True,
                                                      enable_gqa=kv_heads != heads)
        out = core()
        grad = torch.randn_like(out)
        fwd = kernel_ms(core)
        bwd = kernel_ms(lambda: torch.autograd.grad(out, (q, k, v), grad, retain_graph=True))
        f_flops, b_flops = plan_flops(batch, heads, seq, head_dim)
        peak = a.peak_tflops * 1e12
        rows.append({"batch": batch, "head_dim": head_dim, "heads": heads, "kv_heads": kv_heads, "seq": seq,
                     "dropout": dropout, "forward_ms": fwd, "backward_ms": bwd,
                     "forward_share": f_flops / (fwd * 1e-3) / peak,
                     "backward_share": b_flops / (bwd * 1e-3) / peak,
                     "share": (f_flops + b_flops) / ((fwd + bwd) * 1e-3) / peak})
        del q, k, v, out, grad
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "peak_tflops": a.peak_tflops, "shapes": a.shapes, "rows": rows}))


if __name__ == "__main__":
    main()

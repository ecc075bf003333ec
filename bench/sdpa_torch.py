"""FlashAttention (torch's scaled_dot_product_attention, causal, bf16) on one
GPU over head sizes, sequence lengths and dropout: the rate its kernels reach
as a share of the GPU's bf16 peak, with the FLOPs the simulator's GPT plan
counts for the fused core (model/softmax_transformer.cpp: causal, half of
4·B·H·N²·d forward, 2.5× that backward). The simulator prices this core at
one constant share (sim/op_costs.h, `softmax_attention`); this measures how
far the share moves with the shape and with dropout (docs/validation.md).

Each shape keeps B·H·d = 4096 (a 4096-wide model's heads, batch 1) and is
timed by its kernels alone (the profiler's kernel durations summed, as
bench/gpt_torch.py does), forward and backward.

Prints one JSON object: {"device", "torch", "peak_tflops", "rows": [{"head_dim",
"heads", "seq", "dropout", "forward_ms", "backward_ms", "forward_share",
"backward_share", "share"}]}.

usage: python3 bench/sdpa_torch.py [--peak-tflops 989.4]
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peak-tflops", type=float, default=989.4, help="the GPU's dense bf16 peak (H100/H200 SXM)")
    a = ap.parse_args()
    rows = []
    for head_dim in (64, 96, 128):
        for seq in (2048, 4096, 8192):
            for dropout in (0.0, 0.1):
                heads = 4096 // head_dim
                leaf = lambda: torch.randn(1, heads, seq, head_dim, device="cuda", dtype=torch.bfloat16,
                                           requires_grad=True)
                q, k, v = leaf(), leaf(), leaf()
                core = lambda: F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
                out = core()
                grad = torch.randn_like(out)
                fwd = kernel_ms(core)
                bwd = kernel_ms(lambda: torch.autograd.grad(out, (q, k, v), grad, retain_graph=True))
                f_flops, b_flops = plan_flops(1, heads, seq, head_dim)
                peak = a.peak_tflops * 1e12
                rows.append({"head_dim": head_dim, "heads": heads, "seq": seq, "dropout": dropout,
                             "forward_ms": fwd, "backward_ms": bwd,
                             "forward_share": f_flops / (fwd * 1e-3) / peak,
                             "backward_share": b_flops / (bwd * 1e-3) / peak,
                             "share": (f_flops + b_flops) / ((fwd + bwd) * 1e-3) / peak})
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "peak_tflops": a.peak_tflops, "rows": rows}))


if __name__ == "__main__":
    main()

"""Peers of lightning_bench at the same shapes (tnl-1b: 16 heads of 128, batch
1, bf16): (1) the same block-wise algorithm written with PyTorch ops (intra-
block masked products batched over all blocks, inter-block state by a prefix
over per-block states), forward + backward by autograd; (2) FlashAttention
through torch's scaled_dot_product_attention (causal softmax attention).
Prints: torch_chunked N fwd_ms bwd_ms / sdpa N fwd_ms bwd_ms"""
import sys

import torch
from torch_timing import median_ms

H, D, BLOCK = 16, 128, 64


def chunked(q, k, v, slopes):
    # q, k, v: [B, H, N, D], N a multiple of BLOCK. λ = exp(-slope) per head.
    b, h, n, d = q.shape
    nb = n // BLOCK
    qb, kb, vb = (t.reshape(b, h, nb, BLOCK, d) for t in (q, k, v))
    idx = torch.arange(BLOCK, device=q.device, dtype=torch.float32)
    s = slopes.view(1, h, 1, 1, 1)
    diff = idx.view(-1, 1) - idx.view(1, -1)
    mask = torch.where(diff >= 0, torch.exp(-s * diff), torch.zeros((), device=q.device))
    scores = torch.matmul(qb.float(), kb.float().transpose(-1, -2)) * mask
    o = torch.matmul(scores, vb.float())
    k_decay = torch.exp(-s * (BLOCK - 1 - idx).view(1, 1, 1, -1, 1))
    states = torch.matmul((kb.float() * k_decay).transpose(-1, -2), vb.float())  # [b,h,nb,d,d]
    block_decay = torch.exp(-slopes.view(1, h, 1, 1) * BLOCK)
    prefix, acc = [], torch.zeros(b, h, d, d, device=q.device)
    for i in range(nb):
        prefix.append(acc)
        acc = acc * block_decay + states[:, :, i]
    prefix = torch.stack(prefix, dim=2)
    q_decay = torch.exp(-s * (idx + 1).view(1, 1, 1, -1, 1))
    o = o + torch.matmul(qb.float() * q_decay, prefix)
    return o.reshape(b, h, n, d).to(q.dtype)


def bench(name, fn, n, reps):
    q, k, v = (torch.randn(1, H, n, D, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    grad = torch.randn(1, H, n, D, device="cuda", dtype=torch.bfloat16)
    fwd = median_ms(lambda: fn(q, k, v), reps, warmup=1)
    out = fn(q, k, v)
    bwd = median_ms(lambda: torch.autograd.grad(out, (q, k, v), grad, retain_graph=True), reps, warmup=1)
    print(f"{name} {n} {fwd:.3f} {bwd:.3f}", flush=True)


def tnl_slopes(device="cuda"):
    return torch.tensor([2 ** (-8 * (h + 1) / H) for h in range(H)], device=device)


if __name__ == "__main__":
    slopes = tnl_slopes()
    for n in [int(a) for a in sys.argv[1:]] or [2048, 8192]:
        reps = 5 if n <= 8192 else 3
        try:
            bench("torch_chunked", lambda q, k, v: chunked(q, k, v, slopes), n, reps)
        except torch.OutOfMemoryError:
            print(f"torch_chunked {n} oom oom", flush=True)
        bench("sdpa", lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True), n, reps)

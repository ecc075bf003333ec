"""The PyTorch peer of train_bench: one training step of a linpar preset of
TransNormerLLM on one GPU, written with plain torch ops so the two trainers can
be timed side by side at the same shapes.

Model (MODEL.md; the same layers, shapes and parameter count as linpar's
model/presets.cpp, model/token_mixer.cpp, model/channel_mixer.cpp,
model/transnormer.cpp): embedding ·√D; per layer x += GLA(SRMSNorm(x)),
x += SGLU(SRMSNorm(x)); final SRMSNorm, LM head (tied when the preset ties),
mean cross-entropy. The causal decayed linear attention is the block-wise
Lightning-Attention-2 algorithm of bench/lightning_torch.py (copied below),
with autograd for the backward; or, with --attention fla, the peer a PyTorch
user would pick: flash-linear-attention's chunk_simple_gla Triton kernel (the
same operator: log-decay −slope per head, scale 1), imported from its source
folder --fla-dir (fetched, never committed; bench/lightning_fla.py checks
its numerics).

Step: bf16 autocast over f32 master parameters, fused AdamW (β 0.9/0.95, ε 1e-8,
weight decay 0.1 on matrices, none on LRPE θ, as linpar's defaults), global
gradient-norm clipping at 1.0, random tokens. Per configuration it prints

  train_torch <model> <seq_len> <batch> <ms_per_step> <tokens_per_s> <model_tflop_per_step> <mfu>

(ms: median over the timed steps, CUDA events; mfu nan without --peak-tflops),
then a `#` line with the peak memory, or `train_torch <model> <seq_len> <batch> oom`.

Usage: python3 bench/tnl_torch.py --model tnl-1b --seq-len 2048 --batch 4
         [--steps 10] [--warmup 3] [--compile] [--peak-tflops 760] [--block 64]
         [--attention chunked|fla] [--fla-dir .device/fla]
--model, --seq-len and --batch take several values; every combination runs.
"""
import argparse
import gc
import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

# name: (layers, width, heads, glu_dim, vocab, tie_embeddings); every preset
# uses LRPE in layer 0 only (LrpeLayers::First). Numbers from model/presets.cpp.
PRESETS = {
    "tnl-385m": (24, 1024, 8, 2816, 64000, True),
    "tnl-1b": (16, 2048, 16, 5632, 64000, True),
    "tnl-3b": (32, 2560, 20, 6912, 64000, True),
    "tnl-7b": (30, 4096, 32, 11008, 64000, True),
    "tnl-tiny": (2, 64, 4, 128, 256, False),
    "tnl-small": (4, 128, 4, 256, 256, False),
    "tnl-base": (8, 256, 8, 512, 256, False),
}
INIT_STD, NORM_EPS = 0.02, 1e-6  # ModelConfig defaults (model/config.h)


def alibi_slopes(n):
    # model/config.cpp alibi_slopes: ALiBi's geometric sequence; for H not a
    # power of two, the closest power's slopes then every other slope of twice it.
    def pow2(m):
        start = 2.0 ** (-8.0 / m)
        return [start ** (i + 1) for i in range(m)]
    closest = 1 << int(math.floor(math.log2(n)))
    if closest == n:
        return pow2(n)
    return (pow2(closest) + pow2(2 * closest)[0::2])[:n]


def layer_slopes(layer, n_layers, n_heads):
    # DecayRule::Released: slope·(1 − l/(L−1) + 1e−5); one layer takes ratio 0.
    ratio = layer / (n_layers - 1) if n_layers > 1 else 0.0
    return [s * (1.0 - ratio + 1e-5) for s in alibi_slopes(n_heads)]


def srmsnorm(x):
    # y = x / sqrt(mean(x²) + eps), no gain; statistics in f32 whatever x is.
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + NORM_EPS)).to(x.dtype)


def lightning_chunked(q, k, v, slopes, block):
    """bench/lightning_torch.py's chunked(), generalised to dk ≠ dv (LRPE doubles
    dk), any block size and a length that is not a multiple of the block (zero
    padding at the end is exact for a causal operator). q, k: [B, H, N, dk],
    v: [B, H, N, dv], slopes: [H] f32 (λ = exp(−slope)). Decay powers are
    exp(−n·slope) in f32; under autocast the matmuls run in bf16."""
    b, h, n, dk = q.shape
    dv = v.shape[-1]
    block = max(1, min(block, n))  # as linpar: min(block_size, length)
    pad = (-n) % block
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    nb = (n + pad) // block
    qb, kb = (t.reshape(b, h, nb, block, dk) for t in (q, k))
    vb = v.reshape(b, h, nb, block, dv)
    idx = torch.arange(block, device=q.device, dtype=torch.float32)
    s = slopes.view(1, h, 1, 1, 1)
    diff = idx.view(-1, 1) - idx.view(1, -1)
    # Intra-block: ((Q Kᵀ) ⊙ M) V with M_ij = λ^{i−j}, i ≥ j (clamp: no exp overflow above the diagonal).
    mask = torch.where(diff >= 0, torch.exp(-s * diff.clamp(min=0)), torch.zeros((), device=q.device))
    o = torch.matmul(torch.matmul(qb, kb.transpose(-1, -2)) * mask, vb)
    # Each block's own state (diag(λ^{b−1..0}) K)ᵀ V, then the prefix over blocks:
    # KV_t = λ^b KV_{t−1} + state_t, kept in f32.
    k_decay = torch.exp(-s * (block - 1 - idx).view(1, 1, 1, -1, 1))
    states = torch.matmul((kb * k_decay).transpose(-1, -2), vb)  # [b, h, nb, dk, dv]
    block_decay = torch.exp(-slopes.view(1, h, 1, 1) * block)
    prefix, acc = [], torch.zeros(b, h, dk, dv, device=q.device, dtype=torch.float32)
    for i in range(nb):
        prefix.append(acc)
        acc = acc * block_decay + states[:, :, i]
    prefix = torch.stack(prefix, dim=2)
    # Inter-block: Λ Q_t KV_{t−1}, Λ = diag(λ^1..λ^b).
    q_decay = torch.exp(-s * (idx + 1).view(1, 1, 1, -1, 1))
    o = o + torch.matmul(qb * q_decay, prefix)
    return o.reshape(b, h, nb * block, dv)[:, :, :n]


def lrpe(x, theta):
    # core/ops/lrpe.cpp: x [B, H, N, d] -> [x ⊙ cos(θp), x ⊙ sin(θp)] with θ per
    # channel h·d + j of the concatenated heads and p = 0..N−1; angles in f32.
    _, h, n, d = x.shape
    pos = torch.arange(n, device=x.device, dtype=torch.float32)
    angle = theta.float().view(h, 1, d) * pos.view(1, n, 1)
    return torch.cat([x * torch.cos(angle), x * torch.sin(angle)], dim=-1)


def fla_attention(q, k, v, slopes):
    """flash-linear-attention's chunk_simple_gla (Triton; imported by
    load_fla), the same operator: log-decay −slope per head, scale 1, its
    layout [B, N, H, d]; dk ≠ dv is allowed (LRPE). Its dots take one dtype:
    LRPE's f32 angles promote q and k under autocast, so they go back to v's
    (bf16), as linpar keeps q_rot and k_rot."""
    q, k = q.to(v.dtype), k.to(v.dtype)
    o, _ = FLA_KERNEL(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), g_gamma=-slopes, scale=1.0)
    return o.transpose(1, 2)


FLA_KERNEL = None


def load_fla(directory):
    # fla's source as a folder (not installable on the GPU machine).
    global FLA_KERNEL
    import sys
    sys.path.insert(0, directory)
    from fla.ops.simple_gla import chunk_simple_gla
    FLA_KERNEL = chunk_simple_gla


class TokenMixer(nn.Module):
    def __init__(self, layer, n_layers, width, heads, use_lrpe, block, attention="chunked"):
        super().__init__()
        self.heads, self.block, self.attention = heads, block, attention
        # Rows [0, D) q, [D, 2D) k, [2D, 3D) v, [3D, 4D) u: linpar's qkvu_proj [4·D, D].
        self.qkvu_proj = nn.Linear(width, 4 * width, bias=False)
        self.out_proj = nn.Linear(width, width, bias=False)
        self.register_buffer("slopes", torch.tensor(layer_slopes(layer, n_layers, heads), dtype=torch.float32))
        # θ_c = 10000^(−2c/D) (lrpe_initial_theta); a parameter, as linpar learns it.
        self.theta = (nn.Parameter(10000.0 ** (-2.0 * torch.arange(width, dtype=torch.float32) / width))
                      if use_lrpe else None)

    def forward(self, x):
        bsz, n, width = x.shape
        heads = lambda t: t.view(bsz, n, self.heads, -1).transpose(1, 2)  # [B, H, N, d]
        q, k, v, u = self.qkvu_proj(x).chunk(4, dim=-1)
        q, k, v = heads(F.silu(q)), heads(F.silu(k)), heads(v)  # v and u: no activation
        if self.theta is not None:
            q, k = lrpe(q, self.theta), lrpe(k, self.theta)
        if self.attention == "fla":
            a = fla_attention(q, k, v, self.slopes)
        else:
            a = lightning_chunked(q, k, v, self.slopes, self.block)
        a = a.transpose(1, 2).reshape(bsz, n, width)
        # SRMSNorm over all D channels of the concatenated heads, output gate, projection.
        return self.out_proj(u * srmsnorm(a))


class ChannelMixer(nn.Module):
    # SGLU: ((x W1) ⊙ (x W2)) W3, no activation; l1, l2 [F, D] and l3 [D, F] as linpar's.
    def __init__(self, width, glu_dim):
        super().__init__()
        self.l1 = nn.Linear(width, glu_dim, bias=False)
        self.l2 = nn.Linear(width, glu_dim, bias=False)
        self.l3 = nn.Linear(glu_dim, width, bias=False)

    def forward(self, x):
        return self.l3(self.l1(x) * self.l2(x))


class TransNormerLLM(nn.Module):
    def __init__(self, preset, block=64, attention="chunked"):
        super().__init__()
        n_layers, width, heads, glu_dim, vocab, tied = PRESETS[preset]
        self.scale = math.sqrt(width)  # scale_embedding (the default) multiplies by √D
        self.embedding = nn.Embedding(vocab, width)
        self.token_mixers = nn.ModuleList(
            TokenMixer(l, n_layers, width, heads, l == 0, block, attention) for l in range(n_layers))
        self.channel_mixers = nn.ModuleList(ChannelMixer(width, glu_dim) for _ in range(n_layers))
        self.lm_head = None if tied else nn.Linear(width, vocab, bias=False)
        for p in self.parameters():  # every matrix N(0, init_std); θ keeps its angles
            if p.dim() == 2:
                nn.init.normal_(p, std=INIT_STD)

    def forward(self, tokens, targets):
        x = self.embedding(tokens) * self.scale  # f32 residual stream under autocast
        for tm, cm in zip(self.token_mixers, self.channel_mixers):
            x = x + tm(srmsnorm(x))
            x = x + cm(srmsnorm(x))
        head = self.embedding.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(srmsnorm(x), head)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets.reshape(-1))


def expected_parameters(preset):
    # ModelConfig::parameter_count: V·D (+ D·V untied) + Σ_l (4D² + D² + 3DF (+ D with LRPE)).
    n_layers, D, _, F_, V, tied = PRESETS[preset]
    return V * D * (1 if tied else 2) + n_layers * (5 * D * D + 3 * D * F_) + D


def masked_product_flops(m, d):
    return 2 * m * m * d + m * (m + 1) // 2


def attention_forward_flops(B, H, N, dk, dv, block):
    # lightning_attention_forward_flops (core/ops/lightning_attention.cpp), no state in or out.
    b, flops, have_state = max(1, min(block, N)), 0, False
    for t0 in range(0, N, b):
        m = min(b, N - t0)
        flops += masked_product_flops(m, dk) + 2 * m * m * dv
        if have_state:
            flops += m * dk + 2 * m * dk * dv
        if t0 + m < N:
            flops += (dk * dv if have_state else 0) + m * dk + 2 * m * dk * dv
            have_state = True
    return B * H * flops


def attention_backward_flops(B, H, N, dk, dv, block):
    # lightning_attention_backward_flops (core/ops/lightning_attention_backward.cpp), no states.
    b, flops, have_state = max(1, min(block, N)), 0, False
    for t0 in range(0, N, b):  # dQ sweep
        m = min(b, N - t0)
        flops += masked_product_flops(m, dv) + 2 * m * m * dk
        if have_state:
            flops += m * dv + 2 * m * dv * dk
        if t0 + m < N:
            flops += (dk * dv if have_state else 0) + m * dk + 2 * m * dk * dv
            have_state = True
    have_grad = False
    for t in reversed(range((N + b - 1) // b)):  # dK/dV sweep
        m = min(b, N - t * b)
        flops += masked_product_flops(m, dk) + masked_product_flops(m, dv) + 2 * m * m * (dv + dk)
        if have_grad:
            flops += 2 * m * dv * dk + 2 * m * dk + 2 * m * dk * dv + 2 * m * dv
        if t > 0:
            flops += (dk * dv if have_grad else 0) + m * dk + 2 * m * dk * dv
            have_grad = True
    return B * H * flops


def model_flops(preset, N, B, block):
    """FLOPs of one step, the matrix products only, counted as train_bench counts
    them from linpar's op plan (its ops named qkvu_proj, out_proj, l1-l3, lm_head,
    lightning_attention):
      6·T·L·(4D² + D² + 3·D·F)       projections and SGLU, forward 2·m·n·k + backward 4·m·n·k
    + 6·T·D·V                        LM head (tied or not, the product runs)
    + Σ_l [fwd(B,H,N,dk_l,d,b) + bwd(B,H,N,dk_l,d,b)]   lightning attention, block b,
                                     dk_l = 2d in the LRPE layer (0), d elsewhere
    with T = B·N tokens. Left out: embedding lookup, SRMSNorm, SiLU, LRPE, gates,
    residuals, cross-entropy, optimizer (elementwise work, not model FLOPs)."""
    n_layers, D, H, F_, V, _ = PRESETS[preset]
    T, d = B * N, D // H
    flops = 6 * T * n_layers * (5 * D * D + 3 * D * F_) + 6 * T * D * V
    for layer in range(n_layers):
        dk = 2 * d if layer == 0 else d
        flops += attention_forward_flops(B, H, N, dk, d, block) + attention_backward_flops(B, H, N, dk, d, block)
    return flops


def build(preset, block, attention="chunked"):
    with torch.device("cuda"):  # initialise on the GPU (a 1B-parameter CPU init takes seconds)
        model = TransNormerLLM(preset, block, attention)
    named = dict(model.named_parameters())  # a tied table appears once
    decay = [p for p in named.values() if p.dim() >= 2]
    no_decay = [p for p in named.values() if p.dim() < 2]  # LRPE θ (linpar: weight_decay=false)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
    return model, opt


def train_step(fn, model, opt, tokens):
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        loss = fn(tokens[:, :-1], tokens[:, 1:])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def is_oom(e):
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e)


def run_config(args, preset, N, B):
    torch.manual_seed(1234)
    model, opt = build(preset, args.block, args.attention)
    V = PRESETS[preset][4]
    batch = lambda: torch.randint(0, V, (B, N + 1), device="cuda")  # inputs and next-token targets
    fn = model
    if args.compile:
        try:
            fn = torch.compile(model)
            train_step(fn, model, opt, batch())  # compiles now, so a failure shows here
        except Exception as e:  # noqa: BLE001 — any compiler failure falls back to eager
            if is_oom(e):
                raise
            print(f"# torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''});"
                  " falling back to eager", flush=True)
            fn = model
            opt.zero_grad(set_to_none=True)
    for _ in range(args.warmup):
        train_step(fn, model, opt, batch())
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        tokens = batch()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        train_step(fn, model, opt, tokens)
        stop.record()
        stop.synchronize()  # each step ends synchronised, as linpar's train_step does
        times.append(start.elapsed_time(stop))
    ms = sorted(times)[len(times) // 2]
    flops = model_flops(preset, N, B, args.block)
    mfu = flops / (ms * 1e-3) / (args.peak_tflops * 1e12) if args.peak_tflops > 0 else float("nan")
    print(f"train_torch {preset} {N} {B} {ms:.2f} {B * N / (ms * 1e-3):.0f} {flops / 1e12:.3f} {mfu:.4f}",
          flush=True)
    print(f"# peak memory {preset} {N} {B}: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB allocated "
          f"(torch.cuda.max_memory_allocated), {torch.cuda.max_memory_reserved() / 2**30:.2f} GiB reserved",
          flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="+", default=["tnl-1b"], choices=sorted(PRESETS))
    p.add_argument("--seq-len", nargs="+", type=int, default=[2048])
    p.add_argument("--batch", nargs="+", type=int, default=[1], help="micro-batch (sequences per step)")
    p.add_argument("--steps", type=int, default=10, help="timed steps (the median is reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (eager if that fails)")
    p.add_argument("--peak-tflops", type=float, default=0.0, help="measured bf16 GEMM peak for MFU (0: nan)")
    p.add_argument("--block", type=int, default=64, help="lightning-attention block (linpar attention_block)")
    p.add_argument("--attention", choices=["chunked", "fla"], default="chunked",
                   help="chunked: the block-wise algorithm in torch ops; fla: flash-linear-attention's "
                        "chunk_simple_gla Triton kernel (source folder --fla-dir)")
    p.add_argument("--fla-dir", default=".device/fla", help="folder holding fla's source (fla/ inside)")
    args = p.parse_args()
    if args.attention == "fla":
        load_fla(args.fla_dir)
    if args.steps < 1:
        p.error("--steps must be at least 1")
    print(f"# torch {torch.__version__} on {torch.cuda.get_device_name()}, compile {'on' if args.compile else 'off'}, "
          f"attention {args.attention}",
          flush=True)
    for preset in args.model:
        with torch.device("meta"):  # count without allocating
            count = sum(q.numel() for q in TransNormerLLM(preset, args.block).parameters())
        print(f"# parameters {preset}: {count} (linpar's formula: {expected_parameters(preset)})", flush=True)
    for preset, N, B in itertools.product(args.model, args.seq_len, args.batch):
        try:
            run_config(args, preset, N, B)
        except Exception as e:  # noqa: BLE001 — OOM only; anything else is a bug to show
            if not is_oom(e):
                raise
            print(f"train_torch {preset} {N} {B} oom", flush=True)
        # Drop the failed config's tensors (the exception held its frames) before the next one.
        gc.collect()
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

"""A PyTorch GPT (Megatron-LM's architecture: learned positions, LayerNorm,
GeLU MLP of 4h, biases, dropout 0.1, tied embeddings) on one GPU, timed op by
op and as a whole training step, to check the simulator's GPT op plan
(sim/softmax_transformer.cpp) against a real implementation on the same GPU
(scripts/sim_vs_gpt_torch.py compares them).

Each op of the plan is timed alone (forward, and backward as autograd's
gradients of its inputs and parameters), by its plan name, at the model's
shape: events around 20 repetitions after warm-up, the median. The attention
core is Megatron's unfused one (Q·Kᵀ by baddbmm, the scale-mask-softmax fused
into one kernel as Megatron's CUDA kernel is, then dropout, P·V by bmm) or
FlashAttention through scaled_dot_product_attention. Megatron's fused
element-wise kernels (bias-GeLU, bias-dropout-add, scale-mask-softmax) are
torch.compile'd functions here; with --eager they are PyTorch's separate
kernels. The whole step (forward and backward of one micro-batch, with every
layer recomputed or not) and the f32 AdamW update of the model's parameters
are timed the same way.

Each is also timed by its kernels alone (the profiler's kernel durations
summed): a small op timed alone between events waits on Python's launch.

Prints one JSON object: {"shape": ..., "ops": {name: ms}, "kernel_ops":
{name: ms}, "step": {...}}.

usage: python3 bench/gpt_torch.py [--layers 24 --hidden 2304 --heads 24
  --vocab 51200 --seq 2048 --batch 4] [--core unfused|flash] [--eager]
  [--dropout 0.1] [--no-step] [--step-kernels] [--flush-l2]
  [--step-recompute both|none|full]
"""
import argparse
import json
import math

import torch
import torch.utils.checkpoint
import torch.nn.functional as F
from torch_timing import median_ms

P_DROP = 0.1


# --flush-l2: a buffer larger than the L2 cache, written before each timed
# run, so an op alone reads its inputs from HBM as it does inside a step
# (timed alone on the same inputs, a tensor that fits the H200's 50 MB of
# L2 is read from the cache).
FLUSH = None


def flush():
    if FLUSH is not None:
        FLUSH.zero_()


def profiled_kernels(run, reps, warmup=2):
    """The GPU kernels (profiler events) of `reps` calls of `run` after
    `warmup` unprofiled ones."""
    for _ in range(warmup):
        run()
    torch.cuda.synchronize()
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(reps):
            run()
        torch.cuda.synchronize()
    return [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]


def kernels_us(kernels):
    return sum(e.time_range.elapsed_us() for e in kernels)


def kernel_ms(run, reps=10):
    """The GPU's kernel time of one run (the profiler's kernels summed): the
    op's own cost, without the gaps where the GPU waits for Python to launch
    it, which timing a small op alone between events also measures. With
    --flush-l2 the flush runs before each run and its kernel is left out."""
    us = kernels_us(profiled_kernels(lambda: (flush(), run()), reps))
    if FLUSH is not None:
        us -= reps * flush_us()  # the flushes' kernels, timed alone
    return us / reps / 1e3


_FLUSH_US = None


def flush_us():
    """One flush's kernel time (measured once)."""
    global _FLUSH_US
    if _FLUSH_US is None:
        _FLUSH_US = kernels_us(profiled_kernels(flush, 10, warmup=1)) / 10
    return _FLUSH_US


def kernel_table(run, top=60):
    """The kernels of one run by name: [{"kernel", "calls", "ms"}], the
    longest `top` first, and the run's total kernel ms: where a whole step's
    time goes that the ops timed alone do not show."""
    by_name = {}
    for e in profiled_kernels(run, 1, warmup=1):
        calls, us = by_name.get(e.name, (0, 0.0))
        by_name[e.name] = (calls + 1, us + e.time_range.elapsed_us())
    rows = sorted(by_name.items(), key=lambda kv: -kv[1][1])
    total = sum(us for _, us in by_name.values()) / 1e3
    return [{"kernel": k[:200], "calls": c, "ms": us / 1e3} for k, (c, us) in rows[:top]], total


def elementwise(eager):
    """Megatron's fused element-wise kernels, compiled (or eager)."""

    def scale_mask_softmax(scores, scale):
        n = scores.shape[-1]
        mask = torch.ones(n, n, dtype=torch.bool, device=scores.device).triu(1)
        return torch.softmax((scores * scale).masked_fill(mask, float("-inf")).float(), dim=-1).to(scores.dtype)

    def bias_gelu(y):
        return F.gelu(y, approximate="tanh")

    def dropout_add(x, y):
        return x + F.dropout(y, P_DROP, training=True)

    if eager:
        return scale_mask_softmax, bias_gelu, dropout_add
    return (torch.compile(scale_mask_softmax, dynamic=False), torch.compile(bias_gelu, dynamic=False),
            torch.compile(dropout_add, dynamic=False))


class Gpt(torch.nn.Module):
    def __init__(self, a, fused):
        super().__init__()
        h, dt = a.hidden, torch.bfloat16
        self.a, self.fused = a, fused
        w = lambda *s: torch.nn.Parameter(0.02 * torch.randn(*s, device="cuda", dtype=dt))
        z = lambda *s: torch.nn.Parameter(torch.zeros(*s, device="cuda", dtype=dt))
        o = lambda *s: torch.nn.Parameter(torch.ones(*s, device="cuda", dtype=dt))
        self.embed, self.pos = w(a.vocab, h), w(a.seq, h)
        self.layers = torch.nn.ModuleList()
        for _ in range(a.layers):
            m = torch.nn.Module()
            m.n1w, m.n1b, m.qkv_w, m.qkv_b, m.o_w, m.o_b = o(h), z(h), w(3 * h, h), z(3 * h), w(h, h), z(h)
            m.n2w, m.n2b, m.f1_w, m.f1_b, m.f2_w, m.f2_b = o(h), z(h), w(4 * h, h), z(4 * h), w(h, 4 * h), z(h)
            self.layers.append(m)
        self.nfw, self.nfb = o(h), z(h)

    def core(self, q, k, v):
        """q, k, v: [N, B, a, d] views of the QKV product -> the context [N, B, h].

        Megatron's sequence-first layout: [N, B·a, d] is a view, so the
        batched products take the heads without a copy."""
        a = self.a
        N, B, H, d = q.shape
        if a.core == "flash":
            heads_first = lambda t: t.permute(1, 2, 0, 3)
            ctx = F.scaled_dot_product_attention(heads_first(q), heads_first(k), heads_first(v), dropout_p=P_DROP,
                                                 is_causal=True)
            return ctx.permute(2, 0, 1, 3).reshape(N, B, H * d)
        batched = lambda t: t.reshape(N, B * H, d).transpose(0, 1)
        scores = torch.bmm(batched(q), batched(k).transpose(1, 2))
        p = F.dropout(self.fused[0](scores, 1.0 / math.sqrt(d)), P_DROP, training=True)
        ctx = torch.bmm(p, batched(v))  # [B·a, N, d]
        return ctx.view(B, H, N, d).permute(2, 0, 1, 3).reshape(N, B, H * d)

    def layer(self, m, x):
        """x: [N, B, h]."""
        a = self.a
        h, H = a.hidden, a.heads
        _, gelu, dropout_add = self.fused
        y = F.linear(F.layer_norm(x, (h,), m.n1w, m.n1b), m.qkv_w, m.qkv_b)
        q, k, v = y.view(a.seq, a.batch, H, 3 * (h // H)).split(h // H, dim=-1)
        x = dropout_add(x, F.linear(self.core(q, k, v), m.o_w, m.o_b))
        y = F.linear(gelu(F.linear(F.layer_norm(x, (h,), m.n2w, m.n2b), m.f1_w, m.f1_b)), m.f2_w, m.f2_b)
        return dropout_add(x, y)

    def forward(self, tokens, targets, recompute):
        a = self.a
        x = F.embedding(tokens.t(), self.embed) + self.pos.unsqueeze(1)  # [N, B, h]
        for m in self.layers:
            if recompute:
                x = torch.utils.checkpoint.checkpoint(self.layer, m, x, use_reentrant=False)
            else:
                x = self.layer(m, x)
        logits = F.linear(F.layer_norm(x, (a.hidden,), self.nfw, self.nfb), self.embed)
        return F.cross_entropy(logits.view(-1, a.vocab), targets.t().reshape(-1))


def op_times(a, fused):
    """Each op of one layer (and the embedding and head) alone, by its plan name."""
    B, N, h, H, V = a.batch, a.seq, a.hidden, a.heads, a.vocab
    d, dt = h // H, torch.bfloat16
    softmax, gelu, dropout_add = fused
    leaf = lambda *s, scale=1.0: (scale * torch.randn(*s, device="cuda", dtype=dt)).requires_grad_()
    out, kernels = {}, {}

    def time_op(name, fn, leaves):
        try:
            y = fn(*leaves)
            g = torch.randn_like(y)
            fwd, bwd = lambda: fn(*leaves), lambda: torch.autograd.grad(y, leaves, g, retain_graph=True)
            out[name + ".forward"] = median_ms(fwd, before=flush)
            out[name + ".backward"] = median_ms(bwd, before=flush)
            kernels[name + ".forward"], kernels[name + ".backward"] = kernel_ms(fwd), kernel_ms(bwd)
        except Exception as e:  # reported, not hidden: the comparison shows the op as missing
            out[name + ".error"] = f"{type(e).__name__}: {e}"[:300]

    x = leaf(B, N, h)
    time_op("attention_norm", lambda x, w, b: F.layer_norm(x, (h,), w, b), [x, leaf(h), leaf(h)])
    time_op("attention.qkv_proj", F.linear, [x, leaf(3 * h, h, scale=0.02), leaf(3 * h)])
    q, k, v = leaf(B, H, N, d), leaf(B, H, N, d), leaf(B, H, N, d)
    if a.core == "flash":
        time_op("attention.core", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, dropout_p=P_DROP,
                                                                                  is_causal=True), [q, k, v])
    else:
        qb, kb, vb = leaf(B * H, N, d), leaf(B * H, N, d), leaf(B * H, N, d)
        time_op("attention.scores", lambda q, k: torch.bmm(q, k.transpose(1, 2)), [qb, kb])
        scores = leaf(B * H, N, N)
        time_op("attention.softmax", lambda s: F.dropout(softmax(s, 1.0 / math.sqrt(d)), P_DROP, training=True),
                [scores])
        time_op("attention.context", torch.bmm, [leaf(B * H, N, N, scale=1.0 / N), vb])
    time_op("attention.out_proj", F.linear, [leaf(B, N, h), leaf(h, h, scale=0.02), leaf(h)])
    time_op("attention_residual", dropout_add, [leaf(B, N, h), leaf(B, N, h)])
    time_op("mlp.fc1", F.linear, [x, leaf(4 * h, h, scale=0.02), leaf(4 * h)])
    time_op("mlp.gelu", gelu, [leaf(B, N, 4 * h)])
    time_op("mlp.fc2", F.linear, [leaf(B, N, 4 * h), leaf(h, 4 * h, scale=0.02), leaf(h)])
    embed = leaf(V, h, scale=0.02)
    time_op("lm_head", F.linear, [x, embed])
    logits = leaf(B * N, V)
    targets = torch.randint(0, V, (B * N,), device="cuda")
    time_op("cross_entropy", lambda l: F.cross_entropy(l, targets), [logits])
    tokens = torch.randint(0, V, (B, N), device="cuda")
    time_op("embedding", lambda e, p: F.embedding(tokens, e) + p, [embed, leaf(N, h)])
    return out, kernels


def step_times(a, fused):
    torch.manual_seed(0)
    model = Gpt(a, fused)
    params = sum(p.numel() for p in model.parameters())
    tokens = torch.randint(0, a.vocab, (a.batch, a.seq), device="cuda")
    targets = torch.randint(0, a.vocab, (a.batch, a.seq), device="cuda")
    out = {"parameters": params}
    for recompute in {"both": (False, True), "none": (False,), "full": (True,)}[a.step_recompute]:
        def run():
            # As Megatron-LM's optimizer does each step (zero_grad with
            # set_to_none): the backward assigns the weight gradients
            # instead of adding them to the last run's.
            model.zero_grad(set_to_none=True)
            model.forward(tokens, targets, recompute).backward()

        key = "full" if recompute else "none"
        out[f"forward_backward_ms_recompute_{key}"] = median_ms(run, reps=5, warmup=2)
        out[f"forward_backward_kernel_ms_recompute_{key}"] = kernel_ms(run, reps=3)
        torch.cuda.reset_peak_memory_stats()
        run()
        out[f"peak_gib_recompute_{key}"] = torch.cuda.max_memory_allocated() / 2**30
        if a.step_kernels and not recompute:
            out["kernels_recompute_none"], out["kernels_total_ms_recompute_none"] = kernel_table(run)
    del model
    torch.cuda.empty_cache()
    # The simulator's optimizer: AdamW over f32 values, gradients and moments.
    master = [torch.zeros(params, device="cuda", dtype=torch.float32, requires_grad=True)]
    master[0].grad = torch.randn_like(master[0])
    opt = torch.optim.AdamW(master, lr=1e-4, fused=True)
    out["adamw_f32_ms"] = median_ms(opt.step, reps=5, warmup=2)
    out["adamw_f32_kernel_ms"] = kernel_ms(opt.step, reps=3)
    return out


def main():
    global P_DROP, FLUSH
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--hidden", type=int, default=2304)
    ap.add_argument("--heads", type=int, default=24)
    ap.add_argument("--vocab", type=int, default=51200)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--core", choices=["unfused", "flash"], default="unfused")
    ap.add_argument("--eager", action="store_true", help="PyTorch's separate element-wise kernels")
    ap.add_argument("--dropout", type=float, default=P_DROP, help="dropout probability (Megatron's GPT: 0.1)")
    ap.add_argument("--no-step", action="store_true", help="op times only")
    ap.add_argument("--flush-l2", action="store_true",
                    help="evict the L2 cache before each timed op (inputs from HBM, as in a step)")
    ap.add_argument("--step-recompute", choices=("both", "none", "full"), default="both",
                    help="the steps to time: without and with full recomputation, or one (a large "
                         "micro-batch of the unfused core fits only with it)")
    ap.add_argument("--step-kernels", action="store_true",
                    help="also list one step's kernels by name (step.kernels_recompute_none)")
    a = ap.parse_args()
    P_DROP = a.dropout
    if a.flush_l2:
        FLUSH = torch.empty(512 * 2**20, dtype=torch.uint8, device="cuda")
    fused = elementwise(a.eager)
    ops, kernels = op_times(a, fused)
    result = {"shape": vars(a), "device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "ops": ops, "kernel_ops": kernels}
    if not a.no_step:
        result["step"] = step_times(a, fused)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

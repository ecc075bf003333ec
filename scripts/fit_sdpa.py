#!/usr/bin/env python3
"""Fits the simulator's FlashAttention curve (sim/op_costs.cpp) to SDPA
kernel times measured by bench/sdpa_torch.py, and checks it on shapes the
fit did not see.

Per kernel (forward, backward), with S = B·H·N²/2 causal scores and F the
plan's FLOPs (forward 4·S·d, backward 2.5× that):

    t = t0 + F / (peak · share(d)) · (1 + n½ / N) + [dropout] S · ops / f32_peak

t0 is the kernel's fixed cost (launch, the last partial wave; the backward
is several kernels), n½ the length at which the per-tile work (loading a
query tile, writing its output and logsumexp) doubles the time of its key
loop, share(d) the rate of the key loop by head size, and `ops` the
per-score cost of dropout (its random numbers are drawn on the CUDA cores,
forward and again backward). For a fixed n½ this is linear in 1/share(d),
t0 and ops: solved by least squares on the relative error, n½ scanned.

Fitted on `--grid` (head sizes 64, 96, 128; 2K-8K tokens; dropout 0 and
0.1) plus the rows of `--held-out` whose head size the grid lacks (160,
256: the only measurements of those); checked on the other held-out rows
(16K and 32K tokens, batches over 1, the few heads of tensor-parallel
shards, grouped K/V heads, the PyTorch GPT's shape).

Then checks the curve as the simulator applies it, the head padded to a
multiple of 32 and the share interpolated between the fitted sizes, on
`--between` (head sizes 80, 112 and 192, other lengths, batches and head
counts).

usage: python3 scripts/fit_sdpa.py [--grid docs/data/sdpa-torch-h200.json]
                                   [--held-out docs/data/sdpa-torch-h200-held-out.json]
                                   [--between docs/data/sdpa-torch-h200-between.json]
"""
import argparse
import json
import math

F32_PEAK = 66.9e12  # H100/H200 SXM non-tensor f32 (sim/hardware.cpp)


def scores(r):
    return r["batch"] * r["heads"] * r["seq"] ** 2 / 2


def flops(r, backward):
    forward = 4 * scores(r) * r["head_dim"]
    return 2.5 * forward if backward else forward


def features(r, dims, half_length, backward, peak):
    """Coefficients of (1/share(d) for each d, t0 in µs, ops per score), in ms."""
    x = [0.0] * len(dims)
    x[dims.index(r["head_dim"])] = flops(r, backward) * (1 + half_length / r["seq"]) / peak * 1e3
    return x + [1e-3, scores(r) / F32_PEAK * 1e3 if r["dropout"] > 0 else 0.0]


def least_squares(a, b):
    """Solves the normal equations of a·x ≈ b (Gauss-Jordan with pivoting)."""
    n = len(a[0])
    m = [[sum(row[i] * row[j] for row in a) for j in range(n)] + [sum(row[i] * y for row, y in zip(a, b))]
         for i in range(n)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        for r in range(n):
            if r != c:
                f = m[r][c] / m[c][c]
                m[r] = [x - f * y for x, y in zip(m[r], m[c])]
    return [m[i][n] / m[i][i] for i in range(n)]


def fit(rows, dims, half_length, peak):
    """(forward, backward) coefficients minimising the relative time error."""
    out = []
    for backward, key in ((False, "forward_ms"), (True, "backward_ms")):
        a = [[v / r[key] for v in features(r, dims, half_length, backward, peak)] for r in rows]
        out.append(least_squares(a, [1.0] * len(rows)))
    return out


def rms(errs):
    return math.sqrt(sum(e[3] ** 2 for e in errs) / len(errs))


def summary(errs):
    mags = sorted(abs(e[3]) for e in errs)
    return f"median |error| {100 * mags[len(mags) // 2]:.1f}%, largest {100 * mags[-1]:.1f}%"


def padded_share(shares, d):
    """sim/op_costs.cpp's softmax_core_share: the head padded to a multiple
    of 32, the share there (linear between the fitted sizes, held at the
    ends), times d / padded."""
    p = (max(d, 1) + 31) // 32 * 32
    dims = sorted(shares)
    if p <= dims[0]:
        share = shares[dims[0]]
    elif p >= dims[-1]:
        share = shares[dims[-1]]
    else:
        lo = max(x for x in dims if x <= p)
        hi = min(x for x in dims if x >= p)
        share = shares[lo] if lo == hi else shares[lo] + (shares[hi] - shares[lo]) * (p - lo) / (hi - lo)
    return share * d / p


def curve_errors(coef, dims, rows, half_length, peak):
    """Per row, the curve as the simulator applies it (padded_share, so any
    head size): (row, relative error forward, backward, the two together)."""
    out = []
    for r in rows:
        t = []
        for b, key in ((False, "forward_ms"), (True, "backward_ms")):
            c = coef[int(b)]
            share = padded_share({d: 1 / x for d, x in zip(dims, c)}, r["head_dim"])
            drop = scores(r) * c[-1] / F32_PEAK if r["dropout"] > 0 else 0.0
            t.append((c[-2] * 1e-6 + flops(r, b) / (peak * share) * (1 + half_length / r["seq"]) + drop) * 1e3)
        out.append((r, t[0] / r["forward_ms"] - 1, t[1] / r["backward_ms"] - 1,
                    sum(t) / (r["forward_ms"] + r["backward_ms"]) - 1))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default="docs/data/sdpa-torch-h200.json")
    ap.add_argument("--held-out", default="docs/data/sdpa-torch-h200-held-out.json")
    ap.add_argument("--between", default="docs/data/sdpa-torch-h200-between.json")
    a = ap.parse_args()
    grid = json.load(open(a.grid))
    held = json.load(open(a.held_out))["rows"]
    peak = grid["peak_tflops"] * 1e12
    grid_dims = sorted({r["head_dim"] for r in grid["rows"]})
    train = grid["rows"] + [r for r in held if r["head_dim"] not in grid_dims]
    check = [r for r in held if r["head_dim"] in grid_dims]
    dims = sorted({r["head_dim"] for r in train})

    half_length = min(range(0, 4001, 50),
                      key=lambda n: rms(curve_errors(fit(train, dims, n, peak), dims, train, n, peak)))
    coef = fit(train, dims, half_length, peak)
    fwd, bwd = coef
    print(f"# {grid['device']}, torch {grid['torch']}; fitted on {len(train)} shapes, checked on {len(check)}")
    print(f"half_length {half_length} tokens")
    for name, c in (("forward", fwd), ("backward", bwd)):
        shares = ", ".join(f"{d}: {1 / x:.3f}" for d, x in zip(dims, c))
        print(f"{name}: share by head size {{{shares}}}; t0 {c[-2]:.1f} us; dropout {c[-1]:.1f} f32 ops per score")
    i128 = dims.index(128)
    together = 3.5 / (fwd[i128] + 2.5 * bwd[i128])
    print(f"heads of 128, long sequences, forward and backward together: {together:.3f} of the peak")
    between = json.load(open(a.between))["rows"]
    for label, rows in (("fitted", train), ("checked", check), ("between (padded to 32)", between)):
        errs = curve_errors(coef, dims, rows, half_length, peak)
        print(f"\n{label}: {summary(errs)}")
        print("batch heads kv_heads head_dim seq dropout | forward backward together")
        for r, ef, eb, et in errs:
            print(f"{r['batch']} {r['heads']} {r['kv_heads']} {r['head_dim']} {r['seq']} {r['dropout']} | "
                  f"{100 * ef:+.1f}% {100 * eb:+.1f}% {100 * et:+.1f}%")


if __name__ == "__main__":
    main()

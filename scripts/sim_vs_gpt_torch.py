#!/usr/bin/env python3
"""The simulator's GPT op plan against bench/gpt_torch.py's measurement on the
same GPU: op by op (layer 0, the embedding and the head) and the whole
step (forward + backward of one micro-batch, with and without full
recomputation, and the AdamW update).

Runs `linpar sim` (pure roofline, one GPU) with --trace on the shape of the
measurement and reads the op-by-op track of micro-batch 0 and the step's
forward / backward / optimizer tasks from the trace. Prints Markdown tables:
predicted ms, measured ms, and predicted / measured - 1 (negative: the
simulator is optimistic, it predicts less time than the GPU takes).

It also prints the share of the HBM bandwidth at which the measured GPT
moves the bytes of the plan's memory-bound ops (the whole plan, time-weighted),
and with --write-efficiency FILE writes it as an [efficiency] file that
`linpar sim --hw-file` reads.

usage: scripts/sim_vs_gpt_torch.py MEASURED.json --model megatron-1.7b
         --gpu h200 [--linpar build-cpu/cli/linpar] [--hw-file FILE] [--hw section.key=value]
         [--write-efficiency FILE]
"""
import argparse
import collections
import json
import os
import subprocess
import tempfile

# Ops timed once for the shapes they share (the plan has both norms; the
# final norm has the same shape).
SAME_AS = {"mlp_norm": "attention_norm", "final_norm": "attention_norm", "mlp_residual": "attention_residual"}
# Plan ops the op timed alone covers only in part: a residual's backward is
# dropout's kernel on the branch plus the sum of the two gradients where the
# stream forks, which an op alone (its input a leaf) does not run. Left out
# of the memory-bound rate; the whole step holds them.
PARTLY_ALONE = {"attention_residual.backward"}


def sim_trace(a, shape, recompute):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "trace.json")
        cmd = [a.linpar, "sim", "--format", "json", "--model", a.model, "--gpu", a.gpu, "--gpus-per-node", "1",
               "--attention-core", shape["core"], "--seq-len", str(shape["seq"]), "--micro-batch",
               str(shape["batch"]), "--global-batch", str(shape["batch"]), "--recompute", recompute,
               "--trace", path] + ([f"--hw-file={a.hw_file}"] if a.hw_file else []) + [f"--hw={h}" for h in a.hw]
        out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        with open(path) as f:
            trace = json.load(f)
    names = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "process_name"}
    ops, memory, tasks = {}, set(), collections.defaultdict(float)
    for e in trace["traceEvents"]:
        if e.get("ph") != "X":
            continue
        if "op by op" in names[e["pid"]]:
            ops.setdefault(e["name"], e["dur"] / 1e3)  # the first: the forward, not its recomputation
            if e.get("cat") == "memory":  # the simulator's class: costed at efficiency.elementwise
                memory.add(e["name"])
        else:
            tasks[e["name"]] += e["dur"] / 1e3
    return out, ops, memory, tasks


def measured_key(name):
    """The measurement's key of a plan op (layer N's ops were measured on one layer)."""
    key = name.split(".", 2)[2] if name.startswith("layers.") else name
    base, _, kind = key.rpartition(".")
    return f"{SAME_AS.get(base, base)}.{kind}"


# A whole step's kernels (bench/gpt_torch.py --step-kernels) by what they
# do, from their names: the first pattern that matches.
KERNEL_CLASSES = [
    ("flash attention", ("flash", "fmha", "sdpa", "cudnn::fusion")),
    ("matrix products", ("gemm", "nvjet", "cutlass", "cublas", "xmma", "sm90_", "sm80_")),
    ("softmax / dropout", ("softmax", "dropout", "philox")),
    ("layer norm", ("layer_norm", "layernorm")),
    ("cross-entropy", ("nll", "log_softmax", "cross_entropy")),
    ("embedding", ("embedding", "index", "sort", "scatter", "radix")),
    ("copies / layout", ("copy", "cat", "transpose", "permute", "contiguous")),
    ("reductions", ("reduce",)),
    ("compiled element-wise", ("triton",)),
    ("other element-wise", ("elementwise", "vectorized", "unrolled", "fill")),
]


def kernel_class(name):
    low = name.lower()
    for cls, parts in KERNEL_CLASSES:
        if any(p in low for p in parts):
            return cls
    return "other"


def err(pred, meas):
    if meas <= 0:  # e.g. a residual's backward without dropout launches no kernel
        return "no kernel"
    return f"{100 * (pred / meas - 1):+.1f}%"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("measured")
    ap.add_argument("--model", required=True, help="the linpar preset of the measured shape")
    ap.add_argument("--gpu", default="h200")
    ap.add_argument("--linpar", default="build-cpu/cli/linpar")
    ap.add_argument("--write-efficiency", metavar="FILE",
                    help="write the measured memory-bound rate as an [efficiency] file for --hw-file")
    ap.add_argument("--hw-file", help="passed to linpar sim (e.g. an [efficiency] file)")
    ap.add_argument("--hw", action="append", default=[],
                    help="passed to linpar sim (e.g. efficiency.elementwise=0.5); repeatable")
    a = ap.parse_args()
    with open(a.measured) as f:
        m = json.load(f)
    shape = m["shape"]
    traces = {r: sim_trace(a, shape, r) for r in ("none", "full")}  # each simulated once
    _, ops, memory, _ = traces["none"]
    print(f"{m['device']}, torch {m['torch']}: {a.model} shape, micro-batch {shape['batch']} × {shape['seq']}, "
          f"{shape['core']} core, element-wise {'eager' if shape['eager'] else 'compiled'}"
          f"{', L2 evicted before each op' if shape.get('flush_l2') else ''}\n")
    kern = m.get("kernel_ops", {})
    print("| op (layer 0) | predicted ms | measured alone ms | its kernels ms | error (vs kernels) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    pred_total = meas_total = kern_total = 0.0
    for name, pred in ops.items():
        if name.startswith("layers.") and not name.startswith("layers.0."):
            continue
        key = measured_key(name)
        meas = m["ops"].get(key)
        if meas is None:
            print(f"| {name} | {pred:.3f} | {m['ops'].get(key.rpartition('.')[0] + '.error', 'not measured')} | | |")
            continue
        k = kern.get(key, meas)
        if name.startswith("layers.0."):
            pred_total += pred
            meas_total += meas
            kern_total += k
        note = " (alone: dropout's kernel only)" if key in PARTLY_ALONE else ""
        print(f"| {name} | {pred:.3f} | {meas:.3f} | {k:.3f} | {err(pred, k)}{note} |")
    print(f"| layer 0, forward + backward | {pred_total:.3f} | {meas_total:.3f} | {kern_total:.3f} | "
          f"{err(pred_total, kern_total)} |")
    # The memory-bound ops of the whole plan (every layer, the embedding and
    # the head's norm and loss) that were timed alone as the plan counts
    # them, against their kernels: the share of the HBM bandwidth at which
    # this implementation moves the bytes the plan counts.
    # The roofline took them at efficiency.elementwise, so the measured share
    # is that times predicted / measured (a time-weighted rate).
    elementwise = traces["none"][0]["efficiency"]["elementwise"]
    mem_pred = mem_kern = 0.0
    for name, pred in ops.items():
        key = measured_key(name)
        if name not in memory or key not in m["ops"] or key in PARTLY_ALONE:
            continue
        mem_pred += pred
        mem_kern += kern.get(key, m["ops"][key])
    if mem_kern > 0:
        rate = elementwise * mem_pred / mem_kern
        print(f"\nmemory-bound ops of the whole plan: {mem_pred:.2f} ms predicted at efficiency.elementwise "
              f"{elementwise:g}, {mem_kern:.2f} ms of their kernels: the plan's bytes at "
              f"{rate:.3f} of the HBM bandwidth")
        if a.write_efficiency:
            with open(a.write_efficiency, "w") as f:
                f.write(f"# The memory-bound ops of a PyTorch GPT on one {m['device']} (torch {m['torch']}):\n"
                        f"# bench/gpt_torch.py at {a.model}'s shape, micro-batch {shape['batch']} x {shape['seq']}, "
                        f"{shape['core']} core, dropout {shape.get('dropout', 0.1)}, element-wise "
                        f"{'eager' if shape['eager'] else 'compiled'} ({os.path.basename(a.measured)}).\n"
                        "# The op plan's bytes of every memory-bound op over their kernels' time, as a share\n"
                        "# of the HBM bandwidth (the other efficiencies stay linpar's defaults). Written by\n"
                        f"# scripts/sim_vs_gpt_torch.py {a.measured} --model {a.model} --gpu {a.gpu} "
                        f"--write-efficiency FILE\n"
                        "# Use: linpar sim ... --hw-file FILE (docs/validation.md).\n"
                        f"[efficiency]\nelementwise = {rate:.3f}\n")
    if "step" not in m:
        return
    s = m["step"]
    print("\n| whole step, one micro-batch | predicted ms | measured ms | its kernels ms | error (vs measured) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for recompute in ("none", "full"):
        _, _, _, tasks = traces[recompute]
        pred = tasks["forward"] + tasks["backward"]
        if f"forward_backward_ms_recompute_{recompute}" not in s:
            continue  # not timed (bench/gpt_torch.py --step-recompute)
        meas = s[f"forward_backward_ms_recompute_{recompute}"]
        k = s.get(f"forward_backward_kernel_ms_recompute_{recompute}", float("nan"))
        print(f"| forward + backward, recompute {recompute} | {pred:.1f} | {meas:.1f} | {k:.1f} | {err(pred, meas)} |")
    print(f"| AdamW (f32) of {s['parameters'] / 1e9:.2f} B parameters | {tasks['optimizer']:.1f} | "
          f"{s['adamw_f32_ms']:.1f} | {s.get('adamw_f32_kernel_ms', float('nan')):.1f} | "
          f"{err(tasks['optimizer'], s['adamw_f32_ms'])} |")
    if "kernels_recompute_none" in s:
        # Where the step's kernel time goes, by class, and the longest kernels:
        # what the ops timed alone do not hold shows up here.
        total = s["kernels_total_ms_recompute_none"]
        by_class = collections.defaultdict(lambda: [0, 0.0])
        for k in s["kernels_recompute_none"]:
            by_class[kernel_class(k["kernel"])][0] += k["calls"]
            by_class[kernel_class(k["kernel"])][1] += k["ms"]
        listed = sum(ms for _, ms in by_class.values())
        print(f"\n| one step's kernels (recompute none), by class | calls | ms | share |")
        print("| --- | ---: | ---: | ---: |")
        for cls, (calls, ms) in sorted(by_class.items(), key=lambda kv: -kv[1][1]):
            print(f"| {cls} | {calls} | {ms:.1f} | {100 * ms / total:.1f}% |")
        print(f"| not listed (below the longest {len(s['kernels_recompute_none'])}) | | {total - listed:.1f} | "
              f"{100 * (total - listed) / total:.1f}% |")
        print(f"| all | | {total:.1f} | |")
        print("\n| longest kernels | calls | ms |")
        print("| --- | ---: | ---: |")
        for k in s["kernels_recompute_none"][:25]:
            print(f"| {k['kernel'][:110]} | {k['calls']} | {k['ms']:.2f} |")


if __name__ == "__main__":
    main()

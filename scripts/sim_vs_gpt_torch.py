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

usage: scripts/sim_vs_gpt_torch.py MEASURED.json --model megatron-1.7b
         --gpu h200 [--linpar build-cpu/cli/linpar]
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


def sim_trace(a, shape, recompute):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "trace.json")
        cmd = [a.linpar, "sim", "--format", "json", "--model", a.model, "--gpu", a.gpu, "--gpus-per-node", "1",
               "--attention-core", shape["core"], "--seq-len", str(shape["seq"]), "--micro-batch",
               str(shape["batch"]), "--global-batch", str(shape["batch"]), "--recompute", recompute,
               "--trace", path]
        out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        with open(path) as f:
            trace = json.load(f)
    names = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "process_name"}
    ops, tasks = {}, collections.defaultdict(float)
    for e in trace["traceEvents"]:
        if e.get("ph") != "X":
            continue
        if "op by op" in names[e["pid"]]:
            ops.setdefault(e["name"], e["dur"] / 1e3)  # the first: the forward, not its recomputation
        else:
            tasks[e["name"]] += e["dur"] / 1e3
    return out, ops, tasks


def err(pred, meas):
    return f"{100 * (pred / meas - 1):+.1f}%"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("measured")
    ap.add_argument("--model", required=True, help="the linpar preset of the measured shape")
    ap.add_argument("--gpu", default="h200")
    ap.add_argument("--linpar", default="build-cpu/cli/linpar")
    a = ap.parse_args()
    with open(a.measured) as f:
        m = json.load(f)
    shape = m["shape"]
    traces = {r: sim_trace(a, shape, r) for r in ("none", "full")}  # each simulated once
    _, ops, _ = traces["none"]
    print(f"{m['device']}, torch {m['torch']}: {a.model} shape, micro-batch {shape['batch']} × {shape['seq']}, "
          f"{shape['core']} core, element-wise {'eager' if shape['eager'] else 'compiled'}\n")
    kern = m.get("kernel_ops", {})
    print("| op (layer 0) | predicted ms | measured alone ms | its kernels ms | error (vs kernels) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    pred_total = meas_total = kern_total = 0.0
    for name, pred in ops.items():
        if name.startswith("layers.") and not name.startswith("layers.0."):
            continue
        key = name.removeprefix("layers.0.")
        base, _, kind = key.rpartition(".")
        key = f"{SAME_AS.get(base, base)}.{kind}"
        meas = m["ops"].get(key)
        if meas is None:
            print(f"| {name} | {pred:.3f} | {m['ops'].get(key.rpartition('.')[0] + '.error', 'not measured')} | | |")
            continue
        k = kern.get(key, meas)
        if name.startswith("layers.0."):
            pred_total += pred
            meas_total += meas
            kern_total += k
        print(f"| {name} | {pred:.3f} | {meas:.3f} | {k:.3f} | {err(pred, k)} |")
    print(f"| layer 0, forward + backward | {pred_total:.3f} | {meas_total:.3f} | {kern_total:.3f} | "
          f"{err(pred_total, kern_total)} |")
    if "step" not in m:
        return
    s = m["step"]
    print("\n| whole step, one micro-batch | predicted ms | measured ms | its kernels ms | error (vs measured) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for recompute in ("none", "full"):
        _, _, tasks = traces[recompute]
        pred = tasks["forward"] + tasks["backward"]
        meas = s[f"forward_backward_ms_recompute_{recompute}"]
        k = s.get(f"forward_backward_kernel_ms_recompute_{recompute}", float("nan"))
        print(f"| forward + backward, recompute {recompute} | {pred:.1f} | {meas:.1f} | {k:.1f} | {err(pred, meas)} |")
    print(f"| AdamW (f32) of {s['parameters'] / 1e9:.2f} B parameters | {tasks['optimizer']:.1f} | "
          f"{s['adamw_f32_ms']:.1f} | {s.get('adamw_f32_kernel_ms', float('nan')):.1f} | "
          f"{err(tasks['optimizer'], s['adamw_f32_ms'])} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Predicted vs measured step times (docs/validation.md).

Reads the `validation_runs.txt` that scripts/gpu_validation.sh writes on a GPU
machine (name, GPUs, median step seconds, peak GiB, then the `linpar train`
arguments), runs `linpar sim` for each run's layout on that machine's GPU
(pure roofline, and with --profile FILE when given) and prints a Markdown
table with the errors and their medians.

usage: scripts/sim_vs_real.py RUNS.txt --gpu h200 [--profile PROFILE.json] [--linpar build/cli/linpar]
"""
import argparse
import json
import statistics
import subprocess
import sys

# linpar train options that carry over to linpar sim unchanged
SHARED = {"--model", "--seq-len", "--micro-batch", "--global-batch", "--dp", "--tp", "--pp",
          "--pp-schedule", "--sp", "--sp-kind", "--zero", "--co2-tau"}
FLAGS = {"--tp-sp"}


def sim_args(train_args):
    out, i = [], 0
    while i < len(train_args):
        a = train_args[i]
        if a in FLAGS:
            out.append(a)
            i += 1
        elif a in SHARED:
            out += [a, train_args[i + 1]]
            i += 2
        else:
            i += 2 if i + 1 < len(train_args) and not train_args[i + 1].startswith("--") else 1
    return out


def predict(linpar, args, gpus, gpu, profile):
    cmd = [linpar, "sim", "--format", "json", "--gpu", gpu, "--gpus-per-node", str(gpus)] + args
    if profile:
        cmd += ["--profile", profile]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("runs")
    p.add_argument("--gpu", required=True)
    p.add_argument("--profile")
    p.add_argument("--linpar", default="build/cli/linpar")
    o = p.parse_args()
    rows, errs, perrs, merrs = [], [], [], []
    for line in open(o.runs):
        f = line.split()
        if len(f) < 5:
            continue
        name, gpus, measured, peak = f[0], int(f[1]), float(f[2]), float(f[3].rstrip("GiB"))
        args = sim_args(f[4:])
        roof = predict(o.linpar, args, gpus, o.gpu, None)
        err = roof["step_time_s"] / measured - 1
        errs.append(abs(err))
        cells = [name, str(gpus), f"{measured * 1e3:.1f}", f"{roof['step_time_s'] * 1e3:.1f}", f"{100 * err:+.1f}%"]
        if o.profile:
            prof = predict(o.linpar, args, gpus, o.gpu, o.profile)
            perr = prof["step_time_s"] / measured - 1
            perrs.append(abs(perr))
            cells += [f"{prof['step_time_s'] * 1e3:.1f}", f"{100 * perr:+.1f}%"]
        mem = roof["memory_per_gpu_bytes"] / 2**30
        if peak > 0:
            merr = mem / peak - 1
            merrs.append(abs(merr))
            cells += [f"{peak:.2f}", f"{mem:.2f}", f"{100 * merr:+.1f}%"]
        rows.append(cells)
    head = ["run", "GPUs", "measured ms", "roofline ms", "error"]
    if o.profile:
        head += ["profile ms", "error"]
    head += ["peak GiB (allocator)", "predicted GiB", "error"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()
    print(f"median |error|: roofline {100 * statistics.median(errs):.1f}%"
          + (f", profile {100 * statistics.median(perrs):.1f}%" if perrs else "")
          + (f", memory {100 * statistics.median(merrs):.1f}%" if merrs else ""))


if __name__ == "__main__":
    main()

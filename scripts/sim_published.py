#!/usr/bin/env python3
"""Predicted vs published throughput of large training runs (docs/validation.md).

Runs `linpar sim` (pure roofline) for each published run
below and prints the Markdown table of docs/validation.md's "Published runs"
section: the published figure, the prediction in the same unit, and the error
(predicted throughput / published throughput - 1: positive is optimistic).
The settings and how each published number was read are in that section.

With --hw-file FILE / --hw section.key=value (given to every row, e.g. the
PyTorch GPT's measured element-wise rate in docs/data/) the table also shows
the error with the default efficiencies.

usage: scripts/sim_published.py [--linpar build/cli/linpar] [--commands]
         [--hw-file FILE] [--hw section.key=value ...]
"""
import argparse
import json
import subprocess

SELENE = "--gpu a100-80gb --gpus-per-node 8 --inter-link ib-hdr --nics-per-node 8"
MEGATRON = SELENE + " --attention-core unfused --seq-len 2048"
# How run_table_1.sh's runs averaged their fp16 gradients: --DDP-impl torch
# (1.7B-18B) is PyTorch DDP, overlapped with the last micro-batch's backward;
# --DDP-impl local (39B-1T) all-reduces after the whole pipeline schedule
# (megatron/training.py's train_step of that commit).
# Both summed the micro-batches' fp16 gradients in param.grad by autograd's
# in-place add (the optimizer's zero_grad sets them to None each step, so
# the first micro-batch's are assigned; megatron/optimizer/optimizer.py of
# that commit; Megatron's --gradient-accumulation-fusion came in 2022).
TORCH_DDP = MEGATRON + " --grad-reduce-dtype fp16 --grad-accumulate add"
LOCAL_DDP = MEGATRON + " --grad-reduce after-backward --grad-reduce-dtype fp16 --grad-accumulate add"
# The published LASP code (OpenNLPLab/LASP, every variant) receives the
# neighbour's state with a blocking dist.recv before its attention kernels
# and sends it with a blocking dist.send after them.
LASP_RUN = SELENE + " --lasp-ring blocking"
V = 51200  # Megatron's padded vocabulary
S = 2048

# (source, model, GPUs, layout, published, unit, metric, linpar sim arguments)
# metric: ("narayanan", layers, hidden): eq. (3) TFLOP/s per GPU;
#         ("korthikanti", layers, hidden): step seconds (and MFU);
#         ("tokens", seq): tokens/s of the job; ("model_flops",): TFLOP/s per GPU.
N21 = "Narayanan 2021, Table 1"
K22 = "Korthikanti 2022, Table 5"
L24 = "Sun 2024 (LASP), figure"
D24 = "Dubey 2024 (Llama 3), Table 4"
ROWS = [
    (N21, "megatron-1.7b", 32, "tp 1, pp 1, dp 32; mb 16, batch 512", 137, "TFLOP/s", ("narayanan", 24, 2304),
     f"--model megatron-1.7b {TORCH_DDP} --nodes 4 --dp 32 --tp 1 --pp 1 --recompute full --micro-batch 16 --global-batch 512"),
    (N21, "megatron-3.6b", 64, "tp 2, pp 1, dp 32; mb 16, batch 512", 138, "TFLOP/s", ("narayanan", 30, 3072),
     f"--model megatron-3.6b {TORCH_DDP} --nodes 8 --dp 32 --tp 2 --pp 1 --recompute full --micro-batch 16 --global-batch 512"),
    (N21, "megatron-7.5b", 128, "tp 4, pp 1, dp 32; mb 16, batch 512", 142, "TFLOP/s", ("narayanan", 36, 4096),
     f"--model megatron-7.5b {TORCH_DDP} --nodes 16 --dp 32 --tp 4 --pp 1 --recompute full --micro-batch 16 --global-batch 512"),
    (N21, "megatron-18b", 256, "tp 8, pp 1, dp 32; mb 8, batch 1024", 135, "TFLOP/s", ("narayanan", 40, 6144),
     f"--model megatron-18b {TORCH_DDP} --nodes 32 --dp 32 --tp 8 --pp 1 --recompute full --micro-batch 8 --global-batch 1024"),
    (N21, "megatron-39b", 512, "tp 8, pp 2, dp 32; mb 4, batch 1536", 138, "TFLOP/s", ("narayanan", 48, 8192),
     f"--model megatron-39b {LOCAL_DDP} --nodes 64 --dp 32 --tp 8 --pp 2 --recompute full --micro-batch 4 --global-batch 1536"),
    (N21, "megatron-76b", 1024, "tp 8, pp 4 × 3 chunks, dp 32; mb 2, batch 1792", 140, "TFLOP/s", ("narayanan", 60, 10240),
     f"--model megatron-76b {LOCAL_DDP} --nodes 128 --dp 32 --tp 8 --pp 4 --pp-chunks 3 --recompute full --micro-batch 2 --global-batch 1792"),
    (N21, "megatron-145b", 1536, "tp 8, pp 8 × 2 chunks, dp 24; mb 2, batch 2304", 148, "TFLOP/s", ("narayanan", 80, 12288),
     f"--model megatron-145b {LOCAL_DDP} --nodes 192 --dp 24 --tp 8 --pp 8 --pp-chunks 2 --recompute full --micro-batch 2 --global-batch 2304"),
    (N21, "megatron-310b", 1920, "tp 8, pp 16 × 2 chunks, dp 15; mb 1, batch 2160", 155, "TFLOP/s", ("narayanan", 96, 16384),
     f"--model megatron-310b {LOCAL_DDP} --nodes 240 --dp 15 --tp 8 --pp 16 --pp-chunks 2 --recompute full --micro-batch 1 --global-batch 2160"),
    (N21, "megatron-530b", 2520, "tp 8, pp 35 × 3 chunks, dp 9; mb 1, batch 2520", 163, "TFLOP/s", ("narayanan", 105, 20480),
     f"--model megatron-530b {LOCAL_DDP} --nodes 315 --dp 9 --tp 8 --pp 35 --pp-chunks 3 --recompute full --micro-batch 1 --global-batch 2520"),
    (N21, "megatron-1t", 3072, "tp 8, pp 64, dp 6; mb 1, batch 3072", 163, "TFLOP/s", ("narayanan", 128, 25600),
     f"--model megatron-1t {LOCAL_DDP} --nodes 384 --dp 6 --tp 8 --pp 64 --recompute full --micro-batch 1 --global-batch 3072"),
    (K22, "gpt3-175b", 64, "tp 8 + SP, pp 8, dp 1; mb 1, batch 64", 13.75, "s", ("korthikanti", 96, 12288),
     f"--model gpt3-175b {MEGATRON} --nodes 8 --dp 1 --tp 8 --tp-sp --pp 8 --recompute selective --micro-batch 1 --global-batch 64"),
    (K22, "megatron-530b", 280, "tp 8 + SP, pp 35, dp 1; mb 1, batch 280", 37.83, "s", ("korthikanti", 105, 20480),
     f"--model megatron-530b {MEGATRON} --nodes 35 --dp 1 --tp 8 --tp-sp --pp 35 --recompute selective --micro-batch 1 --global-batch 280"),
    (K22, "megatron-1t", 512, "tp 8 + SP, pp 64, dp 1; mb 1, batch 512", 71.49, "s", ("korthikanti", 128, 25600),
     f"--model megatron-1t {MEGATRON} --nodes 64 --dp 1 --tp 8 --tp-sp --pp 64 --recompute selective --micro-batch 1 --global-batch 512"),
    (L24, "tnl-1b", 16, "LASP sp 16 (DDP); 256K tokens × 1", 202000, "tok/s", ("tokens", 262144),
     f"--model tnl-1b {LASP_RUN} --nodes 2 --sp 16 --sp-kind lasp --seq-len 262144 --micro-batch 1 --global-batch 1"),
    (L24, "tnl-1b", 64, "LASP sp 64 (DDP); 64K tokens × 1", 52200, "tok/s", ("tokens", 65536),
     f"--model tnl-1b {LASP_RUN} --nodes 8 --sp 64 --sp-kind lasp --seq-len 65536 --micro-batch 1 --global-batch 1"),
    (L24, "tnl-1b", 64, "LASP sp 64 (DDP); 256K tokens × 1", 193000, "tok/s", ("tokens", 262144),
     f"--model tnl-1b {LASP_RUN} --nodes 8 --sp 64 --sp-kind lasp --seq-len 262144 --micro-batch 1 --global-batch 1"),
    (L24, "tnl-1b", 64, "LASP sp 64 (DDP); 1024K tokens × 1", 523000, "tok/s", ("tokens", 1048576),
     f"--model tnl-1b {LASP_RUN} --nodes 8 --sp 64 --sp-kind lasp --seq-len 1048576 --micro-batch 1 --global-batch 1"),
    (L24, "tnl-1b", 128, "LASP sp 128 (DDP); 2048K tokens × 1", 659000, "tok/s", ("tokens", 2097152),
     f"--model tnl-1b {LASP_RUN} --nodes 16 --sp 128 --sp-kind lasp --seq-len 2097152 --micro-batch 1 --global-batch 1"),
    (L24, "tnl-7b", 64, "LASP sp 64 (FSDP); 512K tokens × 1", 37200, "tok/s", ("tokens", 524288),
     f"--model tnl-7b {LASP_RUN} --nodes 8 --sp 64 --sp-kind lasp --seq-len 524288 --micro-batch 1 --global-batch 1 --zero 1"),
    (D24, "llama3-405b", 8192, "tp 8 + SP, pp 16, dp 64; mb 1, 2048 × 8K", 430, "TFLOP/s", ("model_flops",),
     "--model llama3-405b --gpu h100 --gpus-per-node 8 --nodes 1024 --inter-link ib-ndr --nics-per-node 8 --dp 64 --tp 8 --tp-sp --pp 16 --zero 1 --seq-len 8192 --micro-batch 1 --global-batch 2048"),
    (D24, "llama3-405b", 16384, "tp 8 + SP, pp 16, dp 128; mb 1, 2048 × 8K", 400, "TFLOP/s", ("model_flops",),
     "--model llama3-405b --gpu h100 --gpus-per-node 8 --nodes 2048 --inter-link ib-ndr --nics-per-node 8 --dp 128 --tp 8 --tp-sp --pp 16 --zero 1 --seq-len 8192 --micro-batch 1 --global-batch 2048"),
]


def batch_of(args):
    a = args.split()
    return int(a[a.index("--global-batch") + 1])


def gpt_flops(args, layers, hidden, factor, vocab_divisor):
    """A step's FLOPs by the Megatron papers' formula,
    factor·B·s·l·h²·(1 + s/6h + V/(vocab_divisor·l·h)): Narayanan's eq. (3) is
    96 and 16 (recomputation counted), Korthikanti's MFU 72 and 12."""
    B, l, h = batch_of(args), layers, hidden
    return factor * B * S * l * h * h * (1 + S / (6 * h) + V / (vocab_divisor * l * h))


def predict(a, row, extra):
    """(published text, predicted text, error) of one row, `extra` appended to its command."""
    source, model, gpus, layout, published, unit, metric, args = row
    out = subprocess.run([a.linpar, "sim", "--format", "json"] + args.split() + extra, check=True,
                         capture_output=True, text=True).stdout
    j = json.loads(out)
    t = j["step_time_s"]
    mark = "" if j["fits"] else " ‡"
    if metric[0] == "narayanan":
        pred = gpt_flops(args, metric[1], metric[2], 96, 16) / (t * gpus) / 1e12
        return f"{published} TFLOP/s", f"{pred:.1f} TFLOP/s{mark}", pred / published - 1
    if metric[0] == "korthikanti":
        F = gpt_flops(args, metric[1], metric[2], 72, 12)
        mfu = lambda sec: F / (sec * gpus * 312e12)
        return (f"{published:.2f} s (MFU {100 * mfu(published):.1f}%)", f"{t:.2f} s (MFU {100 * mfu(t):.1f}%){mark}",
                published / t - 1)
    if metric[0] == "tokens":
        pred = metric[1] / t
        return f"≈{published:,} tok/s", f"{pred:,.0f} tok/s{mark}", pred / published - 1
    pred = j["model_flops_per_gpu"] / t / 1e12
    return f"{published} TFLOP/s", f"{pred:.1f} TFLOP/s{mark}", pred / published - 1


def signed(err):
    return f"{'+' if err >= 0 else '−'}{abs(100 * err):.1f}%"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--linpar", default="build/cli/linpar")
    ap.add_argument("--commands", action="store_true", help="print the numbered commands instead")
    ap.add_argument("--hw-file", help="passed to every row's linpar sim (e.g. an [efficiency] file)")
    ap.add_argument("--hw", action="append", default=[],
                    help="passed to every row's linpar sim (e.g. efficiency.elementwise=0.5); repeatable")
    a = ap.parse_args()
    extra = ([f"--hw-file={a.hw_file}"] if a.hw_file else []) + [f"--hw={h}" for h in a.hw]
    if a.commands:
        for i, row in enumerate(ROWS, 1):
            print(f"{i:2d}. linpar sim {' '.join([row[7]] + extra)}")
        return
    # With overrides, the defaults' error beside the prediction's.
    print("| # | source | model | GPUs | layout | published | predicted | error |" + (" defaults |" if extra else ""))
    print("| ---: | --- | --- | ---: | --- | ---: | ---: | ---: |" + (" ---: |" if extra else ""))
    within = within_default = 0
    for i, row in enumerate(ROWS, 1):
        source, model, gpus, layout = row[:4]
        pub_s, pred_s, err = predict(a, row, extra)
        within += abs(err) <= 0.15
        line = f"| {i} | {source} | {model} | {gpus:,} | {layout} | {pub_s} | {pred_s} | {signed(err)} |"
        if extra:
            default_err = predict(a, row, [])[2]
            within_default += abs(default_err) <= 0.15
            line += f" {signed(default_err)} |"
        print(line)
    print(f"\n{within} of {len(ROWS)} rows within 15%" +
          (f" ({within_default} with the default efficiencies)." if extra else "."))


if __name__ == "__main__":
    main()

"""The PyTorch peers' clock (the counterpart of cuda_timing.h): CUDA events
around each run after warm-up, the median of the runs, in milliseconds."""
import torch


def median_ms(run, reps=20, warmup=3, before=None):
    """`before` (optional) runs ahead of each timed run, outside the events
    (e.g. evicting the L2 cache)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        if before is not None:
            before()
        start.record()
        run()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return sorted(times)[len(times) // 2]

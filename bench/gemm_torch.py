"""The peer of gemm_bench: torch.matmul (bf16, cuBLAS through PyTorch) at the
same shapes, timed the same way (events, warm-up, median, two alternating
input sets). Prints: torch NAME m n k median_ms tflops"""
import torch
from torch_timing import median_ms

CASES = [("square_8192", 8192, 8192, 8192), ("1b_qkvu", 8192, 8192, 2048),
         ("1b_out_proj", 8192, 2048, 2048), ("1b_l1", 8192, 5632, 2048), ("1b_l3", 8192, 2048, 5632),
         ("1b_lm_head", 8192, 64000, 2048), ("385m_l1", 8192, 2816, 1024)]


for name, m, n, k in CASES:
    a = [0.1 * torch.randn(m, k, device="cuda", dtype=torch.bfloat16) for _ in range(2)]
    b = [0.1 * torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(2)]
    state = {"i": 0}

    def run():
        i = state["i"]
        torch.matmul(a[i], b[i].t())
        state["i"] = i ^ 1

    ms = median_ms(run)
    print(f"torch {name} {m} {n} {k} {ms:.4f} {2 * m * n * k / (ms * 1e9):.1f}")

"""Exercises of notebook 10 (multi-GPU and distributed training)."""

import torch
from torch.utils.data import DistributedSampler

from helpers.distributed import rank_table
from helpers.exercises import exercise
from helpers.exercises.hints import case_text, mismatch


@exercise("10.1", "rank and world size from the launch")
def check_ranks(answer):
    for nnodes, nproc in [(2, 8), (1, 4), (3, 2), (4, 1)]:
        for row in rank_table(nnodes, nproc):
            got = answer(nnodes, nproc, row["node_rank"], row["local_rank"])
            expected = (row["rank"], row["world_size"])
            if tuple(got) != expected:
                case = (f"{nnodes} machines x {nproc} processes, machine {row['node_rank']}, "
                        f"local rank {row['local_rank']}")
                return mismatch(case, f"(rank, world_size) = {expected}", tuple(got))
    return None


@exercise("10.2", "DataParallel's scatter")
def check_scatter(answer):
    g = torch.Generator().manual_seed(0)
    for batch, devices in [(8, 2), (10, 4), (3, 4), (7, 3)]:
        x = torch.randn(batch, 5, generator=g)
        got = answer(x, devices)
        expected = x.chunk(devices)
        sizes = [len(c) for c in expected]
        if len(got) != len(expected):
            return (f"a batch of {batch} over {devices} devices: expected {len(expected)} pieces "
                    f"(sizes {sizes}), got {len(got)}")
        for piece, truth in zip(got, expected, strict=True):
            if piece.shape != truth.shape or not torch.equal(piece, truth):
                return (f"a batch of {batch} over {devices} devices: expected pieces of sizes "
                        f"{sizes} along dim 0, in order; got {[len(p) for p in got]}")
    return None


@exercise("10.3", "a rank's share of the samples")
def check_shard(answer):
    for n, world in [(10, 2), (10, 3), (5, 4), (16, 8), (7, 1)]:
        for rank in range(world):
            sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=False)
            got = [int(i) for i in answer(n, world, rank)]
            if got != list(sampler):
                return mismatch(case_text(n=n, world_size=world, rank=rank), list(sampler), got,
                                " (every rank gets the same number of samples: pad by repeating "
                                "from the start, then take every world_size-th index from `rank`)")
    return None


@exercise("10.4", "mean and variance of two groups together")
def check_combine(answer):
    g = torch.Generator().manual_seed(1)
    for n1, n2 in [(2, 2), (3, 9), (1, 5)]:
        a = torch.randn(n1, 4, generator=g, dtype=torch.float64) * 3 + 1
        b = torch.randn(n2, 4, generator=g, dtype=torch.float64) - 2
        va, ma = torch.var_mean(a, dim=0, correction=0)
        vb, mb = torch.var_mean(b, dim=0, correction=0)
        mean, var = answer(n1, ma, va, n2, mb, vb)
        true_var, true_mean = torch.var_mean(torch.cat([a, b]), dim=0, correction=0)
        if not torch.allclose(torch.as_tensor(mean), true_mean, atol=1e-9):
            return f"groups of {n1} and {n2}: the mean should be {true_mean.tolist()}, got {mean}"
        if not torch.allclose(torch.as_tensor(var), true_var, atol=1e-9):
            return (f"groups of {n1} and {n2}: the variance should be {true_var.tolist()}, "
                    f"got {var}; the spread of the group means around the overall mean counts too")
    return None

"""Exercises of notebook 10 (multi-GPU and distributed training).

The collective exercises run the learner's function once per simulated rank, each in its own
thread, with an `all_reduce(tensor)` that sums the tensor over the ranks in place, as
`torch.distributed.all_reduce` does (`_run_ranks`).
"""

import threading

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


def _run_ranks(fn, arguments):
    """fn(*arguments[r], all_reduce) on one thread per rank r; returns (results, all_reduce calls
    per rank). all_reduce(t) sums t over the ranks in place; an error in any rank is raised."""
    world = len(arguments)
    barrier = threading.Barrier(world, timeout=10)
    slots, calls, results, errors = [None] * world, [0] * world, [None] * world, []

    def run(rank):
        def all_reduce(t):
            calls[rank] += 1
            slots[rank] = t.detach().clone()
            barrier.wait()
            total = sum(slots)
            barrier.wait()
            t.copy_(total)
            return t

        try:
            results[rank] = fn(*arguments[rank], all_reduce)
        except Exception as exc:  # the other ranks would wait for ever: stop them
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
    if real or errors:
        raise (real or errors)[0]
    return results, calls


@exercise("10.2", "all_gather written with all_reduce")
def check_all_gather(answer):
    g = torch.Generator().manual_seed(0)
    for world, shape in [(2, (3,)), (3, (2, 2)), (4, (1,))]:
        pieces = [torch.randn(shape, generator=g) for _ in range(world)]
        arguments = [(pieces[r].clone(), r, world) for r in range(world)]
        try:
            results, calls = _run_ranks(answer, arguments)
        except threading.BrokenBarrierError:
            return ("the ranks did not all call all_reduce the same number of times (one waited "
                    "for a partner that never came): every rank must make the same calls")
        truth = torch.stack(pieces)
        for rank, got in enumerate(results):
            if not isinstance(got, torch.Tensor) or got.shape != truth.shape:
                shape_got = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
                return (f"{world} ranks, tensors of shape {shape}: expected a tensor of shape "
                        f"{tuple(truth.shape)} on every rank, got {shape_got} on rank {rank}")
            if torch.allclose(got, truth.sum(0).expand_as(truth)):
                return ("every row holds the sum of all ranks' tensors: before the all_reduce put "
                        "this rank's tensor in row `rank` and zeros in the others")
            if not torch.allclose(got, truth):
                return (f"{world} ranks: row r must hold rank r's tensor on every rank; rank "
                        f"{rank} got rows that differ by up to {(got - truth).abs().max():.3g}")
        if max(calls) > 1:
            return f"it works, with {max(calls)} all_reduce calls per rank; one is enough"
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


@exercise("10.5", "a masked loss that DDP averages correctly")
def check_masked_loss(answer):
    g = torch.Generator().manual_seed(2)
    world = 2
    target = torch.randn(2 * world, 5, generator=g, dtype=torch.float64)
    target[0, :4] = float("nan")  # rank 0 holds more missing targets than rank 1
    prediction = torch.randn(2 * world, 5, generator=g, dtype=torch.float64)
    observed = ~torch.isnan(target)
    whole = prediction.clone().requires_grad_()
    truth = ((whole - target.nan_to_num())[observed] ** 2).mean()
    truth.backward()
    preds = [p.clone().requires_grad_() for p in prediction.chunk(world)]
    arguments = [(preds[r], target.chunk(world)[r], world) for r in range(world)]
    losses, _ = _run_ranks(answer, arguments)
    if not all(isinstance(v, torch.Tensor) and v.ndim == 0 for v in losses):
        return "return this rank's loss as a 0-dimensional tensor"
    average = sum(losses) / world  # what DDP's gradient averaging optimises
    if torch.isnan(average):
        return "the loss is NaN: leave the missing targets out (mask them) before averaging"
    local_means = sum(((p - t.nan_to_num())[~torch.isnan(t)] ** 2).mean()
                      for p, t in zip(preds, target.chunk(world), strict=True)) / world
    if torch.isclose(average, local_means.detach()):
        return ("each rank divided by its own number of observed targets; rank 0 has fewer, so each "
                "of its errors weighs more than in one process. Divide by the count over all ranks "
                "(all_reduce it)")
    if torch.isclose(average * world, truth.detach()):
        return "DDP averages the ranks' gradients: multiply by world_size to undo that average"
    if not torch.isclose(average, truth.detach()):
        return f"the ranks' average loss is {average.item():.4f}; one process gets {truth.item():.4f}"
    for p in (*losses,):
        p.backward()
    for rank, p in enumerate(preds):
        part = whole.grad.chunk(world)[rank]
        if p.grad is None or not torch.allclose(p.grad / world, part):
            return ("the loss values agree but not their gradients: compute the loss from the "
                    "prediction (only the count may come from all_reduce)")
    return None

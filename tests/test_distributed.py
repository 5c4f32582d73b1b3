"""helpers.distributed, helpers.ddp_demo and DDP in `python -m helpers.train`: torchrun's ranks are read
and checked; bad launches (wrong backend, no GPU for nccl, inconsistent variables) give a clear ValueError;
a DistributedSampler's shares make up the one-process batch; moments combined over processes equal the full
batch's; 2 CPU processes with batch B end with the same weights as one process with batch 2B; one failing
rank ends the whole job quickly and visibly; the training command runs under torchrun, prints its JSON once
and writes a plain checkpoint.

The torchrun tests start real processes (gloo on CPU), on a free port, one thread each, with timeouts."""

import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import TensorDataset

from helpers.cli import main
from helpers.ddp_demo import demo_training
from helpers.distributed import (
    DistributedModel,
    Runtime,
    all_reduce_moments,
    choose_backend,
    combine_moments,
    distributed_loader,
    init_distributed,
    launch_info,
    rank_table,
)
from helpers.files import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--rdzv-backend=c10d",
            "--rdzv-endpoint=127.0.0.1:0"]  # port 0: the launcher picks a free port


#: init_distributed's default timeout_s: how long a rank waits in a collective operation before it raises
COLLECTIVE_TIMEOUT_S = inspect.signature(init_distributed).parameters["timeout_s"].default


def torchrun_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    return env | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def torchrun(args: list[str], timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(TORCHRUN + args, cwd=ROOT, env=torchrun_env(), capture_output=True, text=True,
                          timeout=timeout)


def job_env(rank=0, world=2, local_world=2, **extra) -> dict:
    env = {"RANK": str(rank), "LOCAL_RANK": str(rank % local_world), "WORLD_SIZE": str(world),
           "LOCAL_WORLD_SIZE": str(local_world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    return env | extra


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- who am I: ranks, backends, bad launches ------------------------------------------------------------
def test_launch_info_reads_torchruns_variables():
    assert launch_info({}) is None
    info = launch_info(job_env(rank=11, world=16, local_world=8))
    assert (info.rank, info.local_rank, info.world_size, info.local_world_size) == (11, 3, 16, 8)
    assert (info.master_addr, info.master_port) == ("127.0.0.1", 29500)


@pytest.mark.parametrize("env, words", [
    ({"WORLD_SIZE": "2"}, "RANK"),
    (job_env(rank=2, world=2), "RANK < WORLD_SIZE"),
    (job_env(RANK="one"), "integers"),
    (job_env(LOCAL_WORLD_SIZE="3"), "LOCAL_WORLD_SIZE <= WORLD_SIZE"),
])
def test_inconsistent_launch_variables_are_named(env, words):
    with pytest.raises(ValueError, match=words):
        launch_info(env)


def test_rank_table_of_two_machines_with_eight_gpus():
    table = rank_table(2, 8)
    assert [row["rank"] for row in table] == list(range(16))
    assert {row["world_size"] for row in table} == {16}
    assert table[11] == {"node_rank": 1, "local_rank": 3, "rank": 11, "world_size": 16}
    assert [row["local_rank"] for row in table] == list(range(8)) * 2
    with pytest.raises(ValueError, match="nproc_per_node"):
        rank_table(2, 0)


def test_backend_choice_and_wrong_backends():
    assert choose_backend("auto", "cpu") == "gloo"
    assert choose_backend("gloo", "cpu") == "gloo"
    with pytest.raises(ValueError, match="nccl.*CUDA GPUs.*gloo"):
        choose_backend("nccl", "cpu")
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'gloo', 'nccl', got 'mpi'"):
        choose_backend("mpi", "cpu")


def test_init_distributed_refuses_bad_launches_before_joining(monkeypatch):
    with pytest.raises(ValueError, match="torchrun"):
        init_distributed(env={})
    with pytest.raises(ValueError, match="nccl"):
        init_distributed("cpu", "nccl", env=job_env())
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            init_distributed("cuda", env=job_env())
    else:
        gpus = torch.cuda.device_count()
        with pytest.raises(ValueError, match="world size"):
            init_distributed("cuda", env=job_env(world=gpus + 1, local_world=gpus + 1))
    assert not dist.is_initialized()


def test_cli_under_a_bad_launch_gives_one_error_line(monkeypatch, tmp_path, capsys):
    for key, value in job_env(rank=1).items():
        monkeypatch.setenv(key, value)
    assert main(["--data", "metro", "--epochs", "1", "--backend", "nccl", "--device", "cpu",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: backend 'nccl'") and err.count("\n") == 1
    assert not (tmp_path / "run").exists() and not dist.is_initialized()


# --- data shares, moments, the wrapper ------------------------------------------------------------------
def test_the_ranks_batches_make_up_the_one_process_batch():
    data = TensorDataset(torch.arange(40.0))
    one = [b[0] for b in distributed_loader(data, 8, Runtime(world_size=1), seed=3)]
    shares = [[b[0] for b in distributed_loader(data, 4, Runtime(rank=r, world_size=2), seed=3)] for r in (0, 1)]
    assert len(one) == len(shares[0]) == 5
    for step, batch in enumerate(one):
        together = torch.cat([shares[0][step], shares[1][step]])
        assert torch.equal(together.sort().values, batch.sort().values)
    assert torch.equal(torch.cat(one).sort().values, torch.arange(40.0))  # every sample once per epoch


def test_combined_moments_equal_the_full_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.1]) + 2
    parts = [x[:2], x[2:7], x[7:]]  # unequal groups
    counts = torch.tensor([len(p) for p in parts])
    means = torch.stack([p.mean(0) for p in parts])
    variances = torch.stack([p.var(0, correction=0) for p in parts])
    mean, variance = combine_moments(counts, means, variances)
    full_var, full_mean = torch.var_mean(x, dim=0, correction=0)
    torch.testing.assert_close(mean, full_mean)
    torch.testing.assert_close(variance, full_var)
    assert (variances.mean(0) - full_var).abs().max() > 0.1  # averaging the groups' variances is wrong
    with pytest.raises(ValueError, match="groups"):
        combine_moments(counts, means, variances[:, :2])


def test_all_reduce_moments_of_one_process_are_batchnorms_statistics():
    x = torch.randn(4, 3, 5, 2, generator=torch.Generator().manual_seed(1))
    mean, variance = all_reduce_moments(x, Runtime())
    bn = nn.BatchNorm2d(3, momentum=1.0)
    bn(x)  # momentum 1: the running mean is the batch mean; running_var is the unbiased variance
    torch.testing.assert_close(mean, bn.running_mean)
    n = x.numel() / 3
    torch.testing.assert_close(variance * n / (n - 1), bn.running_var)
    with pytest.raises(ValueError, match="channels"):
        all_reduce_moments(torch.ones(3), Runtime())


def test_distributed_model_checkpoints_are_the_plain_models_and_sync_batchnorm_refuses_cpu(tmp_path):
    x = torch.randn(4, 3)
    nn.SyncBatchNorm(3).train()(x)  # outside a process group: plain BatchNorm
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
        wrapped = DistributedModel(model)
        assert list(wrapped.state_dict()) == list(model.state_dict())  # no "module." prefix
        other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
        wrapped.load_state_dict(other.state_dict())
        assert torch.equal(model[0].weight, other[0].weight)
        with pytest.raises(ValueError, match="GPU"):  # notebook 10: inside a group it needs accelerator tensors
            nn.SyncBatchNorm(3).train()(x)
        nn.SyncBatchNorm(3).eval()(x)  # evaluation mode: running statistics, no synchronisation
    finally:
        dist.destroy_process_group()


# --- real processes -------------------------------------------------------------------------------------
def test_two_processes_with_batch_b_equal_one_process_with_batch_2b(tmp_path):
    run = torchrun(["-m", "helpers.ddp_demo", "--batch-size", "8", "--steps", "4", "--out",
                    str(tmp_path / "ddp.pt")])
    assert run.returncode == 0, run.stderr[-3000:]
    logged = {(rank, step) for rank in (0, 1) for step in (1, 2, 3, 4)
              if f"rank {rank}/2 step {step}: 8 samples" in run.stdout}
    assert len(logged) == 8  # each rank's line for each step
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    lines = []
    single = demo_training(Runtime(), batch_size=16, steps=4, log=lines.append)
    assert len(lines) == 5 and lines[0].startswith("rank 0/1 step 1: 16 samples")
    diff = max((single[k] - ddp[k]).abs().max().item() for k in single)
    assert diff < 1e-5
    first = demo_training(Runtime(), batch_size=16, steps=1, log=lines.append)
    assert max((first[k] - ddp[k]).abs().max().item() for k in single) > 1e-3  # the steps did change weights
    averaged = [line for line in run.stdout.splitlines() if "averaged over ranks" in line]
    assert averaged == [lines[4].replace("0/1", "0/2")]  # the logged loss is the one-process loss


def test_one_failing_rank_ends_the_job_quickly_with_its_error():
    t0 = time.perf_counter()
    run = torchrun(["-m", "helpers.ddp_demo", "--fail-rank", "1"], timeout=COLLECTIVE_TIMEOUT_S)
    seconds = time.perf_counter() - t0
    assert run.returncode != 0
    assert "RuntimeError: rank 1/2: simulated failure at step 2" in run.stderr
    assert "rank 1/2 step 2" not in run.stdout and "epoch 1" not in run.stdout
    # "quickly" means: torchrun stops the healthy rank instead of leaving it blocked in its next all-reduce
    # until the collective timeout. A run takes seconds; the bound leaves a loaded machine a wide margin.
    assert seconds < COLLECTIVE_TIMEOUT_S / 2


def test_training_command_under_torchrun_prints_json_once_and_writes_a_plain_checkpoint(tmp_path):
    out = tmp_path / "run"
    run = torchrun(["-m", "helpers.train", "--data", "metro", "--model", "stgcn", "--epochs", "1", "--json",
                    "--channels", "8,4,8", "--blocks", "1", "--batch-size", "64", "--out", str(out)])
    assert run.returncode == 0, run.stderr[-3000:]
    objects = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(objects) == 1 and run.stdout.count("test windows") == 1
    result = json.loads(objects[0])
    assert result["epochs_run"] == 1 and result["metrics"]["overall"]["mae"] > 0
    assert json.loads((out / "metrics.json").read_text())["metrics"] == result["metrics"]
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert not any(k.startswith("module.") for k in ckpt["model"])
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "metrics.json", "predictions.png"]

"""train_epoch with gradient accumulation: a last incomplete group of batches is weighted like a full one."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.train import train_epoch


def _model_and_data(samples):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(samples, 3, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64) + 0.1
    torch.manual_seed(0)
    return nn.Linear(3, 1).double(), x, y


@pytest.mark.parametrize("samples, groups", [
    # 5 batches of 4 with accumulation_steps=3: groups [1, 2, 3] and [4, 5]. The second step must use the
    # mean gradient of batches 4 and 5 (as one step on their 8 samples), not 2/3 of it.
    (20, [slice(0, 12), slice(12, 20)]),
    (24, [slice(0, 12), slice(12, 24)]),  # complete groups: unchanged by the fix
])
def test_each_group_steps_with_the_mean_gradient_of_its_batches(samples, groups):
    model, x, y = _model_and_data(samples)
    by_hand = copy.deepcopy(model)
    train_epoch(model, DataLoader(TensorDataset(x, y), batch_size=4), F.mse_loss,
                torch.optim.SGD(model.parameters(), lr=0.1), accumulation_steps=3)
    optimizer = torch.optim.SGD(by_hand.parameters(), lr=0.1)
    for group in groups:  # equal batches: the mean over a group's samples
        optimizer.zero_grad()
        F.mse_loss(by_hand(x[group]), y[group]).backward()
        optimizer.step()
    for ours, expected in zip(model.parameters(), by_hand.parameters(), strict=True):
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)

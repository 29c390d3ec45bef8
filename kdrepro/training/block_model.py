"""K students of one architecture as one module: their weights stacked, their GEMMs batched.

Section 3's temperature grid trains many unregularised 784-H-H-10 students on the
same transfer set. When they also share a batch (a paired design: one seed, one
batch order), their first layers are one [B,784] x [784,K*H] product and the
later layers one batched product each (torch.baddbmm over [K,...] weights).
Every student still owns its parameters: a sum of per-student losses gives each
its own gradient, and SGD is elementwise, so student k trains as it would alone
(up to float rounding in the GEMMs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdrepro.data.mnist import normalize
from kdrepro.training.models import MLP


class StudentBlock(nn.Module):
    """`count` copies of one MLP's initial weights, trained side by side.

    first_weight is [K*H1, 784] (student k owns rows k*H1 .. (k+1)*H1), the
    later layers' weights are [K, in, out] and their biases [K, 1, out].
    """

    def __init__(self, init: MLP, count: int):
        super().__init__()
        if init.input_dropout or init.hidden_dropout or init.max_norm is not None:
            raise ValueError("a student block trains networks without dropout or max-norm")
        first, *rest = init.layers
        self.count, self.hidden = int(count), list(init.hidden)
        self.first_weight = nn.Parameter(first.weight.detach().repeat(count, 1))
        self.first_bias = nn.Parameter(first.bias.detach().repeat(count))
        self.weights = nn.ParameterList(
            nn.Parameter(layer.weight.detach().T.unsqueeze(0).repeat(count, 1, 1)) for layer in rest)
        self.biases = nn.ParameterList(
            nn.Parameter(layer.bias.detach().view(1, 1, -1).repeat(count, 1, 1)) for layer in rest)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [K, B, 10] of every student for the shared inputs x [B, 784]."""
        h = torch.relu(F.linear(x, self.first_weight, self.first_bias))
        h = h.view(len(x), self.count, -1).transpose(0, 1)
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(bias, h, weight)
            if i < last:
                h = torch.relu(h)
        return h

    @torch.no_grad()
    def student(self, k: int) -> MLP:
        """Student k as an ordinary MLP (a copy), e.g. to save with models.save_model."""
        width = self.hidden[0]
        state = {"layers.0.weight": self.first_weight[k * width:(k + 1) * width],
                 "layers.0.bias": self.first_bias[k * width:(k + 1) * width]}
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases), start=1):
            state[f"layers.{i}.weight"] = weight[k].T
            state[f"layers.{i}.bias"] = bias[k, 0]
        model = MLP(self.hidden)
        model.load_state_dict({name: t.detach().clone().cpu() for name, t in state.items()})
        return model


@torch.no_grad()
def block_errors(block: StudentBlock, images: torch.Tensor, labels: torch.Tensor,
                 batch_size: int = 1000) -> list[int]:
    """Test errors of every student on uint8 images (1000-row chunks, as predict_logits)."""
    errors = torch.zeros(block.count, dtype=torch.int64, device=labels.device)
    for chunk, chunk_labels in zip(images.split(batch_size), labels.split(batch_size)):
        errors += (block(normalize(chunk)).argmax(2) != chunk_labels).sum(1)
    return errors.tolist()

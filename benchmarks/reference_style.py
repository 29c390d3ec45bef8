"""The 2020 reference style of training section 3's teacher, kept only to be timed.

What the reference implementation does, over the same in-memory uint8 MNIST:
a torchvision-style Dataset that returns one PIL image per sample, the
transforms RandomAffine(0, translate=(2/28, 2/28)) + ToTensor + Normalize,
a DataLoader with batch 100, nn.Dropout layers, torch.optim.SGD with its
default (per-tensor) update, max-norm by renorm_ after each step, the loss
read back with `.item()` each batch, and for distillation a live teacher
forward on every batch. The maths matches kdrepro's (dropout 0.2/0.5, jitter
of up to 2 pixels, momentum SGD, max-norm) except that RandomAffine's
rounded shift puts half the weight on the +-2 pixel ends; kdrepro draws
{-2..2} uniformly. That difference costs nothing, so the timing is fair.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from kdrepro.data.mnist import MEAN, STD
from kdrepro.training.losses import distillation_loss, soft_targets


class InMemoryMNIST(Dataset):
    """torchvision.datasets.MNIST's __getitem__ over tensors already in memory."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image = Image.fromarray(self.images[i].numpy(), mode="L")  # as torchvision does
        return self.transform(image), int(self.labels[i])


def make_loader(images, labels, jitter: int, seed: int, batch_size: int = 100) -> DataLoader:
    """Shuffled batches of transformed PIL images, no worker processes (2 cores)."""
    steps = [transforms.RandomAffine(0, translate=(jitter / 28, jitter / 28))] if jitter else []
    steps += [transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))]
    dataset = InMemoryMNIST(images, labels, transforms.Compose(steps))
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator)


def make_mlp(hidden, input_dropout: float = 0.0, hidden_dropout: float = 0.0) -> nn.Sequential:
    """784-H-...-10 ReLU net with nn.Dropout, as the reference builds it."""
    layers: list[nn.Module] = [nn.Flatten()]
    if input_dropout:
        layers.append(nn.Dropout(input_dropout))
    width = 784
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if hidden_dropout:
            layers.append(nn.Dropout(hidden_dropout))
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 10))


def make_optimizer(model: nn.Module, lr: float, momentum: float) -> torch.optim.SGD:
    """torch.optim.SGD with its defaults (a per-tensor loop on CPU)."""
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)


def train_epoch(model: nn.Sequential, loader: DataLoader, optimizer, max_norm: float | None,
                teacher: nn.Module | None = None, temperature: float = 1.0) -> float:
    """One reference-style epoch; with `teacher`, distil from its live logits."""
    model.train()
    total, seen = 0.0, 0
    for x, y in loader:
        logits = model(x)
        if teacher is None:
            loss = F.cross_entropy(logits, y)
        else:
            with torch.no_grad():
                probs = soft_targets(teacher(x), temperature)
            loss = distillation_loss(logits, probs, y, temperature)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if max_norm is not None:
            with torch.no_grad():
                for layer in model:
                    if isinstance(layer, nn.Linear):
                        layer.weight.renorm_(2, 0, max_norm)
        total += loss.item() * len(y)  # a host read per batch, as the reference does
        seen += len(y)
    return total / seen

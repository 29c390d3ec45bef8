"""The paper's multilayer perceptrons (section 3) and their regularisers.

The teacher is 784-1200-1200-10 with dropout and a max-norm constraint on each
unit's incoming weights, as in the dropout work the paper cites (Hinton et al.
2012; Srivastava et al. 2014). Students are 784-H-H-10 without regularisation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from kdrepro.data.mnist import MEAN, STD

IN_FEATURES = 784
NUM_CLASSES = 10
# Bounds that keep a network within one machine (the paper's teacher, 1200-1200, has
# 2.4M weights); checked before anything is allocated, for specs and model files alike.
MAX_LAYERS, MAX_WIDTH, MAX_WEIGHTS = 8, 16_384, 50_000_000
# Keep probabilities are drawn from 16 random bits (see `dropout_mask`).
_MASK_BITS = 16
# How a network sees its pixels (every net receives standardised pixels, kdrepro.data.mnist
# .normalize, and converts them here, so a model file carries its own input convention).
INPUT_SCALINGS = ("standardize", "unit")
INPUT_DROPOUT_SPACES = ("normalized", "raw")


class ModelFileError(RuntimeError):
    """A model file is missing, truncated or not a kdrepro state_dict."""


def _bit_table(device: torch.device | str = "cpu") -> torch.Tensor:
    """[256, 8] table: row b holds the eight bits of byte b as 0.0/1.0."""
    bits = torch.arange(8)
    return ((torch.arange(256)[:, None] >> bits) & 1).float().to(device)


def _random_words(n_words: int, generator: torch.Generator) -> torch.Tensor:
    """`n_words` uniformly random 64-bit words (all 64 bits random).

    Plain `random_()` on int64 draws from [0, 2^63), leaving the top bit 0;
    `from=-2^63, to=None` selects torch's full 64-bit range kernel.
    """
    words = torch.empty(n_words, dtype=torch.int64, device=generator.device)
    return words.random_(-(2**63), None, generator=generator)


def dropout_mask(shape: torch.Size, p: float, generator: torch.Generator,
                 cache: dict) -> torch.Tensor:
    """A dropout mask of zeros and 1/(1-p), drawn from `generator`.

    `bernoulli_` draws one 64-bit float per unit; here each unit costs one
    random bit (p = 0.5, exact) or 16 random bits (other p). A lookup table
    turns bytes into mask values, which is ~30x cheaper than `bernoulli_` on
    CPU. For p != 0.5 the keep probability is rounded to a multiple of 2^-16
    (|error| < 8e-6) and the scale is 1/keep of that rounded value, so every
    unit's expected output is unchanged.
    """
    n = int(torch.Size(shape).numel())
    device = generator.device
    if p == 0.5:
        key = ("bits", device)
        if key not in cache:  # not setdefault: that would rebuild the table every call
            cache[key] = _bit_table(device) * 2.0
        random_bytes = _random_words((n + 63) // 64, generator).view(torch.uint8)
        mask = torch.index_select(cache[key], 0, random_bytes.long()).view(-1)
        return mask[:n].view(shape)
    key = ("u16", p, device)
    if key not in cache:
        levels = 1 << _MASK_BITS
        keep_levels = round((1.0 - p) * levels)
        keep = keep_levels / levels
        table = (torch.arange(levels, device=device) < keep_levels).float() / keep
        # A unit keeps when d + 2^15 < keep_levels for its signed 16-bit draw d.
        # Indexing by d's unsigned bits u = d mod 2^16 instead saves the addition:
        # rolling the table by 2^15 gives the same mask for the same draws.
        cache[key] = torch.roll(table, levels // 2)
    words = _random_words((n + 3) // 4, generator)
    draws = words.view(torch.uint16)[:n].int()
    return torch.index_select(cache[key], 0, draws).view(shape)


class MLP(nn.Module):
    """784-H1-...-10 ReLU network with optional input/hidden dropout and max-norm.

    Paper section 3: the teacher has two hidden layers of 1200 units, dropout
    and weight constraints; students have two layers of 800 (or 300, 30)
    units and no regularisation.
    """

    def __init__(self, hidden: Sequence[int], input_dropout: float = 0.0,
                 hidden_dropout: float = 0.0, max_norm: float | None = None,
                 input_scaling: str = "standardize", input_dropout_space: str = "normalized"):
        super().__init__()
        if input_scaling not in INPUT_SCALINGS or input_dropout_space not in INPUT_DROPOUT_SPACES:
            raise ValueError(f"input_scaling {input_scaling!r} / input_dropout_space "
                             f"{input_dropout_space!r}: expected one of {INPUT_SCALINGS} / "
                             f"{INPUT_DROPOUT_SPACES}")
        self.input_scaling = input_scaling
        self.input_dropout_space = input_dropout_space
        sizes = [IN_FEATURES, *hidden, NUM_CLASSES]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.hidden = list(hidden)
        self.input_dropout = float(input_dropout)
        self.hidden_dropout = float(hidden_dropout)
        self.max_norm = max_norm
        self.generator: torch.Generator | None = None
        self._mask_cache: dict = {}

    def _drop(self, x: torch.Tensor, p: float) -> torch.Tensor:
        if not self.training or p <= 0.0:
            return x
        if self.generator is None:
            raise RuntimeError("MLP.generator must be set before training with dropout")
        return x * dropout_mask(x.shape, p, self.generator, self._mask_cache)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised pixels -> this net's inputs, input dropout included.

        raw: dropout zeroes raw intensities (a dropped pixel becomes background, as in
        Srivastava et al. 2014), then standardises; normalized: dropout acts on the
        standardised pixels (a dropped pixel becomes the mean grey). unit: [0, 1]
        pixels, torchvision's ToTensor (the 2020 blog), recovered as x * STD + MEAN
        (within float32 rounding of the original).
        """
        raw_space = self.input_dropout_space == "raw" and self.training and self.input_dropout > 0
        if self.input_scaling == "unit" or raw_space:
            x = x * STD + MEAN
        x = self._drop(x, self.input_dropout)
        if raw_space and self.input_scaling == "standardize":
            x = (x - MEAN) / STD
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._inputs(x)
        for layer in self.layers[:-1]:
            x = self._drop(torch.relu(layer(x)), self.hidden_dropout)
        return self.layers[-1](x)

    @torch.no_grad()
    def apply_max_norm(self) -> None:
        """Rescale each unit's incoming weight vector to L2 norm <= max_norm."""
        if self.max_norm is None:
            return
        for layer in self.layers:
            if layer.weight.device.type == "cpu":
                _renorm_rows_cpu(layer.weight, self.max_norm)
            else:  # no host sync on accelerators
                layer.weight.renorm_(2, 0, self.max_norm)

    def architecture(self) -> dict:
        """What is needed to rebuild this network around a saved state_dict."""
        arch = {"hidden": self.hidden, "input_dropout": self.input_dropout,
                "hidden_dropout": self.hidden_dropout, "max_norm": self.max_norm}
        # only when not the default, so files of the default nets stay byte-identical
        if self.input_scaling != "standardize":
            arch["input_scaling"] = self.input_scaling
        if self.input_dropout_space != "normalized":
            arch["input_dropout_space"] = self.input_dropout_space
        return arch


def _renorm_rows_cpu(weight: torch.Tensor, max_norm: float) -> None:
    """`weight.renorm_(2, 0, max_norm)`, bit for bit, touching only rows over the limit.

    renorm_ multiplies every row by a factor (1 for rows within the limit);
    skipping those exact multiplications by 1 saves a pass over the weights.
    The norms and factors use renorm_'s own float32 formula.
    """
    norms = torch.linalg.vector_norm(weight, 2, dim=1, keepdim=True)
    over = norms > max_norm
    count = int(over.sum())
    if count == 0:
        return
    factor = torch.where(over, torch.full_like(norms, max_norm) / (norms + 1e-7), 1.0)
    if 2 * count > len(weight):
        weight.mul_(factor)
        return
    rows = over.view(-1).nonzero().view(-1)
    weight[rows] = weight[rows] * factor[rows]


def weight_count(hidden: Sequence[int]) -> int:
    """Weights and biases of a 784-...-10 network with these hidden widths."""
    sizes = [IN_FEATURES, *hidden, NUM_CLASSES]
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def hidden_ok(hidden) -> bool:
    """1..MAX_LAYERS integer widths in 1..MAX_WIDTH, at most MAX_WEIGHTS weights in all."""
    return (isinstance(hidden, (list, tuple)) and 1 <= len(hidden) <= MAX_LAYERS
            and all(isinstance(h, int) and not isinstance(h, bool) and 1 <= h <= MAX_WIDTH
                    for h in hidden) and weight_count(hidden) <= MAX_WEIGHTS)


def model_bytes(model: MLP) -> bytes:
    """The bytes of a model file: {architecture, state_dict} as `torch.save` writes them."""
    from kdrepro.io import torch_bytes

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return torch_bytes({"architecture": model.architecture(), "state_dict": state})


def save_model(model: MLP, path: Path) -> None:
    """Write {architecture, state_dict} atomically (temp file + rename)."""
    from kdrepro.io import torch_save_atomic

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch_save_atomic(path, {"architecture": model.architecture(), "state_dict": state})


def load_model(path: Path, device: str | torch.device = "cpu") -> MLP:
    """Load a model file with `weights_only=True`; a clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or not {"architecture", "state_dict"} <= saved.keys():
            raise TypeError("not an {architecture, state_dict} mapping")
        if not hidden_ok(saved["architecture"].get("hidden")):
            raise ValueError("hidden widths out of bounds")  # before allocating them
        model = MLP(**saved["architecture"])
        model.load_state_dict(saved["state_dict"])
    except Exception as exc:  # truncated, foreign or tampered files all land here
        # torch's own text suggests weights_only=False, which must never be followed
        raise ModelFileError(
            f"{path} is not a kdrepro model file (expected a state_dict saved by "
            f"`kdrepro train`; loading failed with {type(exc).__name__})") from None
    bad = [name for name, t in model.state_dict().items() if not torch.isfinite(t).all()]
    if bad:
        raise ModelFileError(f"{path} holds non-finite weights (NaN or infinity in {bad[0]}); "
                             "it cannot be evaluated or distilled from")
    return model.to(device)

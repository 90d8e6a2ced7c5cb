"""The minibatch PyTorch engine: any RatingModel, any optimizer, CPU or CUDA.

Speed comes from doing nothing per sample: the training ratings live as tensors on the device, each epoch
draws one ``randperm`` from the engine's own generator, gathers the shuffled columns once and then slices
contiguous batches. The epoch's squared error accumulates in a device tensor, so the only host sync is at the
epoch's end. With sparse gradients (``sparse_adam``, or ``sparse=True`` with SGD/Adagrad) an optimizer step
touches only the embedding rows the batch used, which is what makes large tables cheap. Under torchrun
(``distribute``) each rank trains its shard of every global batch (training/distributed.py) and DDP averages
the gradients, sparse ones included (gloo; NCCL reduces only dense gradients).

Models with Linear layers (deep MF, NeuMF) run their forward pass under bfloat16 autocast where the hardware
multiplies bfloat16 natively (CPUs with AVX512-BF16 or AMX, CUDA GPUs that support it): a 16K x 64 x 64 matmul
took 0.7 ms instead of 2.4 ms on one core here, while weights, optimizer state, embeddings, biases and the
loss stay float32 (u1 test RMSE of deep MF unchanged within seed noise). ``DEEPMF_PRECISION=fp32`` turns it
off, ``bf16`` insists on it.

``DEEPMF_COMPILE=1`` runs each batch's forward pass, loss and penalty (and so their backward) through
``torch.compile``, which fuses the casts, ReLUs and penalty into the matmuls' neighbours: deep MF (K=32, layers
64,64) on ML-100K u1 trained 1.5x as fast per epoch on one CPU thread here (1.5M vs 1.0M ratings/s), with the
same test RMSE. It is off by default because compiling costs more than it saves on small data: about 35 s the
first time on this 2-core machine and about 4 s once Inductor's on-disk cache has the kernels, against
0.33 s saved per million ratings trained: at that rate it pays beyond about 100M ratings per run from a
cold cache, 12M from a warm one. The optimizer step stays eager (fused Adam is one kernel already).

On CUDA, ``gpu_batch_scaling`` (the deep models' default) sizes the batch for the device: a GPU step costs
about the same for 4K or 64K ratings, so a small batch leaves it idle, but a batch too large for the data
leaves too few steps per epoch and the RMSE per epoch collapses. ``device_batch`` grows the batch to about
1/MIN_STEPS_PER_EPOCH of the training ratings (never below the configured batch, never above
GPU_MAX_BATCH), scales the learning rate by the square root of the growth (the usual rule for Adam) and warms
it up linearly over the first epoch's steps; ML-100K keeps its CPU settings, ML-20M-sized data trains at
65,536. Provisional until bench/gpu.py has measured time-to-RMSE on an H200.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from deepmf.errors import ConfigError
from deepmf.training.distributed import epoch_steps

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings
    from deepmf.models.base import RatingModel
    from deepmf.training.config import TrainConfig
    from deepmf.training.distributed import DataParallel

# gpu_batch_scaling (see the module docstring); provisional until measured on a GPU.
GPU_MAX_BATCH = 1 << 16
MIN_STEPS_PER_EPOCH = 256

# Optimizers that accept sparse embedding gradients (SparseAdam only accepts sparse ones).
SPARSE_CAPABLE = ("sgd", "adagrad", "sparse_adam")
PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware (not by emulation, which is slower)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    if get_capabilities is None:  # older torch cannot tell: stay with float32, never slower by emulation
        return False
    capabilities = get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def autocast_dtype(model: nn.Module, device: torch.device) -> torch.dtype | None:
    """bfloat16 if the model has Linear layers and the device is fast at it (see module docstring), else None.

    Raises:
        ConfigError: ``$DEEPMF_PRECISION`` is not one of PRECISIONS, or asks for bf16 the device lacks.
    """
    choice = os.environ.get("DEEPMF_PRECISION", "auto").strip().lower() or "auto"
    if choice not in PRECISIONS:
        raise ConfigError(f"DEEPMF_PRECISION must be one of {', '.join(PRECISIONS)}, got {choice!r}")
    if choice == "fp32":
        return None
    if choice == "bf16":
        if not native_bf16(device):
            raise ConfigError(f"DEEPMF_PRECISION=bf16, but {device} has no native bfloat16 matrix multiply")
        return torch.bfloat16
    has_linear = any(isinstance(module, nn.Linear) for module in model.modules())
    return torch.bfloat16 if has_linear and native_bf16(device) else None


def compile_requested() -> bool:
    """Whether ``$DEEPMF_COMPILE`` asks for a ``torch.compile``d training step (see module docstring).

    Raises:
        ConfigError: the variable is set to something other than 0 or 1.
    """
    choice = os.environ.get("DEEPMF_COMPILE", "0").strip() or "0"
    if choice not in ("0", "1"):
        raise ConfigError(f"DEEPMF_COMPILE must be 0 or 1, got {choice!r}")
    return choice == "1"


def device_batch(config: TrainConfig, n_ratings: int, device: torch.device) -> tuple[int, float, int]:
    """(batch size, learning-rate factor, warm-up steps) the torch engine uses (see the module docstring).

    The configured batch and rate, with no warm-up, unless ``gpu_batch_scaling`` is on and ``device`` is CUDA.
    """
    if not config.gpu_batch_scaling or device.type != "cuda":
        return config.batch_size, 1.0, 0
    fitting = 1 << max(0, (n_ratings // MIN_STEPS_PER_EPOCH).bit_length() - 1)  # a power of two
    batch = max(config.batch_size, min(GPU_MAX_BATCH, fitting))
    growth = batch / config.batch_size
    return batch, math.sqrt(growth), (-(-n_ratings // batch) if growth > 1 else 0)


def _dense_optimizer(name: str, params: list[nn.Parameter], config: TrainConfig, weight_decay: float,
                     fused: bool = True) -> torch.optim.Optimizer:
    """The configured torch optimizer over ``params``.

    ``fused`` (dense gradients only) runs SGD/Adam/AdamW/Adagrad as one kernel per step instead of a
    handful of small ops per parameter; RMSprop has no fused form.
    """
    lr = config.lr
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=weight_decay,
                               fused=fused)
    if name in ("adam", "sparse_adam"):  # sparse_adam: Adam for the dense layers beside SparseAdam
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=config.momentum, weight_decay=weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay, fused=fused)
    raise ConfigError(f"optimizer {name!r} is not available in the torch engine")


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> Any:
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.lr_schedule == "step":  # a tenth of the rate for each third of the run
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, config.epochs // 3), gamma=0.1)
    if config.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    return None


class _Outputs(nn.Module):
    """``(model output, L2 penalty or None)`` of a batch: the forward pass a step differentiates.

    A module rather than a method so that data-parallel training can wrap it in DDP, whose gradient hooks
    only fire for a forward pass run through the wrapper.
    """

    def __init__(self, model: RatingModel, with_penalty: bool) -> None:
        super().__init__()
        self.model = model
        self.with_penalty = with_penalty

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.with_penalty:
            return self.model.forward_with_penalty(users, items)
        return self.model(users, items), None


class TorchEngine:
    """One epoch of minibatch training of ``model`` on ``train`` (see module docstring)."""

    name = "torch"

    def __init__(self, model: RatingModel, train: Ratings, config: TrainConfig, device: torch.device) -> None:
        if len(train) == 0:
            raise ConfigError("no training ratings")
        self.model = model.to(device)
        self.config = config
        self.device = device
        self.data = train.to(device)
        self.n = len(self.data)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(config.seed)
        self.autocast = autocast_dtype(self.model, device)
        self.precision = "fp32" if self.autocast is None else "bf16"
        self._forward_context = (contextlib.nullcontext if self.autocast is None
                                 else functools.partial(torch.autocast, device.type, dtype=self.autocast))
        self.batch_size, lr_factor, self.warmup_steps = device_batch(config, self.n, device)
        self.optimizers = self._build_optimizers()
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] *= lr_factor  # before the schedulers are built, so they start from the scaled rate
        self.peak_lrs = [[group["lr"] for group in o.param_groups] for o in self.optimizers]
        self.steps = 0
        # What the Trainer reports beside the configuration, so the switch is visible.
        self.effective_options = {"batch_size": self.batch_size, "lr": config.lr * lr_factor,
                                  "warmup_steps": self.warmup_steps}
        self.schedulers = [s for s in (_scheduler(o, config) for o in self.optimizers) if s is not None]
        self.outputs: nn.Module = _Outputs(self.model, config.l2 > 0)
        self.group: DataParallel | None = None
        self.compiled = compile_requested()
        # The forward pass, loss and penalty of a batch, and through AOTAutograd their backward too.
        self._batch_loss = torch.compile(self._eager_batch_loss) if self.compiled else self._eager_batch_loss

    def _build_optimizers(self) -> list[torch.optim.Optimizer]:
        config = self.config
        sparse = config.optimizer == "sparse_adam" or config.sparse
        if sparse and config.optimizer not in SPARSE_CAPABLE:
            raise ConfigError(f"sparse gradients need optimizer sgd, adagrad or sparse_adam, "
                              f"not {config.optimizer!r}")
        embeddings: list[nn.Parameter] = []
        if sparse:
            for module in self.model.modules():
                if isinstance(module, nn.Embedding):
                    module.sparse = True  # a forward-time flag: the saved weights do not change
                    embeddings.append(module.weight)
        embedding_ids = {id(p) for p in embeddings}
        dense = [p for p in self.model.parameters() if id(p) not in embedding_ids and p.requires_grad]
        optimizers: list[torch.optim.Optimizer] = []
        if config.optimizer == "sparse_adam":
            optimizers.append(torch.optim.SparseAdam(embeddings, lr=config.lr))
            if dense:
                optimizers.append(_dense_optimizer("adam", dense, config, config.weight_decay))
        elif sparse:
            # Weight decay would densify the sparse gradients; embeddings are regularised by l2 instead.
            optimizers.append(_dense_optimizer(config.optimizer, embeddings, config, 0.0, fused=False))
            if dense:
                optimizers.append(_dense_optimizer(config.optimizer, dense, config, config.weight_decay))
        else:
            optimizers.append(_dense_optimizer(config.optimizer, dense, config, config.weight_decay))
        return optimizers

    def _eager_batch_loss(self, users: torch.Tensor, items: torch.Tensor,
                          ratings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(model output, the batch's loss, loss + l2 x penalty) of one batch."""
        with self._forward_context():
            output, penalty = self.outputs(users, items)
            loss = self.model.loss(output, ratings)
        return output, loss, loss if penalty is None else loss + self.config.l2 * penalty

    def distribute(self, group: DataParallel) -> None:
        """Train data-parallel in ``group``: each epoch on this rank's shard, gradients averaged by DDP."""
        self.group = group
        self.outputs = group.wrap(self.outputs)

    def train_epoch(self, epoch: int) -> float:
        """One shuffled pass in minibatches; returns the training RMSE of the pass (model in train mode)."""
        model, data, batch_size = self.model, self.data, self.batch_size
        model.train()
        order = torch.randperm(self.n, generator=self.generator, device=self.device)
        order, steps = epoch_steps(order, batch_size, self.group)
        users, items, ratings = data.users[order], data.items[order], data.ratings[order]
        squared_error = torch.zeros((), dtype=torch.float64, device=self.device)
        classification = model.head == "classification"
        for step in steps:
            u, i, r = users[step.start:step.end], items[step.start:step.end], ratings[step.start:step.end]
            output, loss, total = self._batch_loss(u, i, r)
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)
            (total if step.weight == 1.0 else total * step.weight).backward()
            if self.steps < self.warmup_steps:
                self._warm_up()
            for optimizer in self.optimizers:
                optimizer.step()
            self.steps += 1
            if not step.scored:
                continue
            with torch.no_grad():
                if classification:
                    squared_error += (model.to_rating(output.float()) - r).pow(2).sum()
                else:  # the MSE loss is already the batch's mean squared error
                    squared_error += loss.detach() * r.shape[0]
        if self.group is not None:
            squared_error = self.group.all_sum(squared_error)
        rmse = math.sqrt(float(squared_error) / self.n)
        if not math.isfinite(rmse):
            raise ConfigError(f"training diverged in epoch {epoch} (loss is NaN or infinite): "
                              f"lower the learning rate (now {self.config.lr})")
        return rmse

    def _warm_up(self) -> None:
        """Linear warm-up: step t of W runs at (t + 1) / W of the scaled rate (the last one at the full rate)."""
        fraction = (self.steps + 1) / self.warmup_steps
        for optimizer, peaks in zip(self.optimizers, self.peak_lrs, strict=True):
            for group, peak in zip(optimizer.param_groups, peaks, strict=True):
                group["lr"] = peak * fraction

    def step_schedule(self, val_rmse: float | None) -> None:
        """Advance the LR schedule at the end of an epoch (plateau needs the validation RMSE)."""
        for scheduler in self.schedulers:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                if val_rmse is not None:
                    scheduler.step(val_rmse)
            else:
                scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [o.state_dict() for o in self.optimizers],
                "schedulers": [s.state_dict() for s in self.schedulers],
                "generator": self.generator.get_state(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved_shape = (len(state["optimizers"]), len(state["schedulers"]))
        if saved_shape != (len(self.optimizers), len(self.schedulers)):
            raise ConfigError("checkpoint was written with a different optimizer or LR schedule")
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        for scheduler, saved in zip(self.schedulers, state["schedulers"], strict=True):
            scheduler.load_state_dict(saved)
        self.generator.set_state(state["generator"].cpu())
        self.steps = int(state.get("steps", 0))  # checkpoints from before warm-up existed have no count

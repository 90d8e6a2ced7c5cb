"""Fold-in: a new user's representation fitted against a trained model's fixed item side, without retraining.

Each model class says how it folds a user in (``RatingModel.fold_in``) and returns a *one-user model*: a
RatingModel whose only user, index 0, is the new user and whose item side is the trained model's own tensors
(shared, never copied or changed), so scoring, ranking and clipping work on it unchanged. This module holds
what the models share:

- ``FoldInContext``: the training run's regularization, translated for one user, so that the fold-in solves
  the same objective the model was trained on;
- ``ridge``: the closed-form solution for models whose prediction is linear in the user's parameters (MF,
  SVD++, I-AutoRec, each Bayesian MF sample);
- ``one_user_copy`` and ``fit_user_rows``: the gradient path for models whose user enters through embedding
  rows of a nonlinear network (deep MF, NeuMF, MF with a sigmoid): a fresh row, everything else frozen;
- ``VectorFoldIn`` and ``VectorUser``: for the implicit-feedback models (BPR, iALS, EASE, popularity), which
  fold a user into a vector themselves (``fold_in_user``) and score such vectors (``score_user_vectors``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from deepmf.models.base import RatingModel

# L-BFGS iterations of the gradient fold-in: a user's rows have a few dozen numbers, so this converges (the
# gradient norm falls below its tolerance) well before the cap on ML-100K users.
GRADIENT_ITERATIONS = 100
# Added to a ridge system's diagonal: an unpenalised offset (I-AutoRec's decoder bias) stays solvable.
JITTER = 1e-6


@dataclass
class FoldInContext:
    """How the trained model was regularized, as the fold-in of one user needs it.

    Attributes:
        l2: the per-rating L2 penalty on a user's rows during training (``TrainConfig.l2``, the numba
            engines' ``reg``): every rating of the user adds ``l2 |row|^2`` to the objective.
        row_decay: optimizer weight decay that reached the user rows at every step (0 when the run had none,
            or used sparse embedding gradients, which get none).
        n_train: number of training ratings (weight decay is applied once per step, so over an epoch it
            weighs like ``n_train * row_decay / 2`` squared errors).
        train_sample: (users, items, ratings) of a sample of the training ratings, for models that estimate a
            noise level from them (Bayesian MF); None if not needed.
        members: one context per member of a blend, in member order.
        cache: per-model precomputations reused by later fold-ins (the item side never changes).
    """

    l2: float = 0.0
    row_decay: float = 0.0
    n_train: int = 0
    train_sample: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    members: tuple[FoldInContext, ...] = ()
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def user_penalty(self, n_ratings: int) -> float:
        """L2 strength on the new user's rows, in units of his summed squared error.

        Training minimises, summed over an epoch, ``sum (r - r')^2 + l2 sum_u n_u |row_u|^2 + n_train *
        decay / 2 |row_u|^2`` (the per-batch means times the batch size): restricted to one user with
        ``n_ratings`` ratings that is his squared error plus this times ``|row|^2``.
        """
        return self.l2 * n_ratings + self.row_decay * self.n_train / 2

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per context (two threads racing compute the same value; either is kept)."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]


@torch.no_grad()
def ridge(design: torch.Tensor, targets: torch.Tensor, penalty: torch.Tensor,
          prior_mean: torch.Tensor | None = None) -> torch.Tensor:
    """Minimiser of ``|targets - design w|^2 + sum_j penalty_j (w_j - prior_mean_j)^2``, in float64.

    Solved on one thread (``_one_thread``): these systems are small (tens to a few hundred unknowns), and a
    threaded BLAS took 45 ms instead of 7 us for a 45 x 33 product, and 0.3 s instead of a few ms for a
    351-unknown solve, on a busy 2-core machine here.

    Args:
        design: (..., n, d) rows of the linear model, one per rating (a leading batch dimension solves
            several independent problems, e.g. one per posterior sample).
        targets: (..., n) what the rows must explain.
        penalty: (..., d) non-negative penalty per coefficient.
        prior_mean: (..., d) the value each coefficient is pulled towards (zero when None).

    Returns:
        (..., d) coefficients, in the design's dtype and device.
    """
    x, y = design.double(), targets.double()
    lam = penalty.double().to(x.device).expand(*x.shape[:-2], x.shape[-1])
    with _one_thread():
        xt = x.transpose(-1, -2)
        gram = xt @ x + torch.diag_embed(lam + JITTER)
        rhs = (xt @ y.unsqueeze(-1)).squeeze(-1)
        if prior_mean is not None:
            rhs = rhs + lam * prior_mean.double()
        solution = torch.linalg.solve(gram, rhs)
    return solution.to(design.dtype)


def one_user_copy(model: RatingModel, user_state: dict[str, torch.Tensor]) -> RatingModel:
    """A copy of ``model`` with one user, whose rows are ``user_state``, sharing every other tensor.

    The copy is built on the meta device (no memory, no initialisation) and then takes the trained model's
    tensors by reference (``load_state_dict(assign=True)``), so it costs the new user's rows only and the
    served model is never written to. Its parameters are frozen and it is in eval mode.

    Args:
        model: the trained model (its config has an ``n_users`` field).
        user_state: state-dict entries with one row for the new user (every entry with a row per user).
    """
    config = dataclasses.replace(model.config, n_users=1)
    with torch.device("meta"):
        copy = type(model)(config)
    state = dict(model.state_dict())
    state.update(user_state)
    copy.load_state_dict(state, strict=True, assign=True)
    copy.requires_grad_(False)
    return copy.eval()


def fit_user_rows(copy: RatingModel, names: list[str], items: torch.Tensor, ratings: torch.Tensor,
                  context: FoldInContext) -> RatingModel:
    """Fit the one-user ``copy``'s rows ``names`` to the new user's ratings; everything else stays fixed.

    Minimises the training objective restricted to the user: the model's own loss (mean squared error, or
    cross-entropy for a classification head) over his ratings plus ``user_penalty / n`` times the squared
    norm of his rows, by L-BFGS from the rows ``copy`` starts with. Eval mode: no dropout, batch norm uses
    its running statistics, as at prediction time.
    """
    rows = [copy.get_parameter(name) for name in names]
    for row in rows:
        row.requires_grad_(True)
    users = torch.zeros_like(items)
    strength = context.user_penalty(len(items)) / len(items)
    optimizer = torch.optim.LBFGS(rows, lr=1.0, max_iter=GRADIENT_ITERATIONS, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = copy.loss(copy(users, items), ratings) + strength * sum(row.square().sum() for row in rows)
        loss.backward()
        return loss

    with torch.enable_grad(), _one_thread():
        optimizer.step(objective)
    for row in rows:
        row.requires_grad_(False)
        row.grad = None
    return copy


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread in this thread for the block, then restore the count.

    Fold-ins multiply a few dozen rows through small layers or solve small systems, and MKL splits even those
    across threads: a NeuMF fold-in took 150 ms on one thread and 10-20 s on two on a busy 2-core machine here
    (each tiny ``addmm`` 680 us instead of a few us). torch keeps the OpenMP and MKL thread counts per calling
    thread, so other threads keep theirs; ``deepmf serve`` runs on one thread anyway.
    """
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class VectorUser(nn.Module):
    """The one-user model of a ``VectorFoldIn`` model: the new user's vector, scored by the trained model's
    ``score_user_vectors`` (its item side shared, never changed). Scores only order items: nothing clips them.
    """

    output_kind = "score"

    def __init__(self, model: Any, vector: torch.Tensor) -> None:
        super().__init__()
        self.model = model  # the served model, already in eval mode and frozen
        self.register_buffer("vector", vector.detach())

    @torch.no_grad()
    def score_all_items(self, users: torch.Tensor) -> torch.Tensor:
        """(B, n_items): every row is the new user's scores (user 0 is the only user)."""
        return self.model.score_user_vectors(self.vector.expand(len(users), *self.vector.shape))

    @torch.no_grad()
    def predict(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.score_all_items(users[:1])[0, items]


class VectorFoldIn:
    """``fold_in`` for models that implement ``fold_in_user(items, weights) -> vector`` and
    ``score_user_vectors(vectors)``: the new user's interactions (weights: event counts) become his vector."""

    def fold_in(self, items: torch.Tensor, ratings: torch.Tensor, context: FoldInContext) -> VectorUser:
        return VectorUser(self, self.fold_in_user(items, ratings))  # type: ignore[attr-defined]

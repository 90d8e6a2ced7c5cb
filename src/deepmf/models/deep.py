"""Deep matrix factorization: user and item embeddings (plus side features) concatenated into an MLP.

Tutorials 000 and 003: any depth and widths (003: 10→5, 000: 64→64), ReLU, optional batch norm before the
activation, dropout, asymmetric user/item embedding sizes (000: 15 vs 25), side-feature embeddings (000: the
first genre), and a classification head over rating values (000). ``DeepModel`` holds what NeuMF shares.

With ``loss="bce"`` the same networks learn implicit feedback as NCF did (He et al. 2017): the output is a
logit, trained by binary cross-entropy on the observed pairs (label 1) and on items drawn uniformly from each
user's unobserved ones (label 0, ``TrainConfig.negatives`` per positive) by the "sampled" engine; it is a
score (``output_kind = "score"``), not a rating.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from deepmf.errors import ConfigError
from deepmf.models.base import RatingModel
from deepmf.models.layers import (
    FastEmbedding,
    FeatureConfig,
    SideFeatures,
    check_dropout,
    check_positive,
    mlp,
    output_width,
    parse_layers,
)

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings

# (user, item) cells per block of the all-items scoring (each cell holds a hidden activation vector).
SCORING_CELLS = 1 << 17
# "rating": learn explicit ratings with the head's loss (squared error, or cross-entropy over rating classes);
# "bce": learn implicit feedback, positives against sampled negatives.
LOSSES = ("rating", "bce")


@dataclass(kw_only=True)
class DeepConfig(FeatureConfig):
    """Shapes and options of the deep models (DeepMF, NeuMF).

    Attributes:
        factors: default embedding size (NeuMF: the GMF size).
        user_dim: user embedding size of the MLP input (None: ``factors``).
        item_dim: item embedding size of the MLP input (None: ``factors``).
        layers: hidden widths of the MLP, first to last.
        batchnorm: batch norm after each hidden Linear, before the ReLU.
        dropout: dropout after each hidden ReLU.
        bias: add user, item and global biases to the output (regression only; None: on for regression).
        head: "regression" (one output) or "classification" (logits over rating values).
        init_std: standard deviation of the normal initialisation of the embeddings.
        loss: one of LOSSES: "rating" (explicit ratings) or "bce" (implicit feedback, NCF's training); the
            default follows the data's feedback.
    """

    factors: int = 32
    user_dim: int | None = None
    item_dim: int | None = None
    layers: tuple[int, ...] = (64, 64)
    batchnorm: bool = False
    dropout: float = 0.2
    bias: bool | None = None
    head: str = "regression"
    init_std: float = 0.1
    loss: str = "rating"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}: choose one of {', '.join(LOSSES)}")
        if self.loss == "bce" and self.head != "regression":
            raise ConfigError("loss bce scores one logit per pair: it needs the regression head")
        check_positive("factors", self.factors)
        self.user_dim = self.factors if self.user_dim is None else self.user_dim
        self.item_dim = self.factors if self.item_dim is None else self.item_dim
        check_positive("user_dim", self.user_dim)
        check_positive("item_dim", self.item_dim)
        self.layers = parse_layers(self.layers)
        check_dropout(self.dropout)
        if self.bias is None:  # NCF's networks have no per-user/item biases
            self.bias = self.head == "regression" and self.loss == "rating"
        elif self.bias and self.head == "classification":
            raise ConfigError("biases add to a rating, so they apply to the regression head only")
        if not self.init_std >= 0:
            raise ConfigError(f"init_std must be >= 0, got {self.init_std}")


class DeepModel(RatingModel):
    """What the deep models share: side features, the head, and biases added to a regression output."""

    config_class: ClassVar[Any] = DeepConfig
    # Attribute names of the per-user and per-item embedding tables (for the per-batch L2 penalty).
    user_tables: ClassVar[tuple[str, ...]] = ()
    # The user and the item table whose rows open the MLP tower's input, in that order (all-items scoring).
    tower_tables: ClassVar[tuple[str, ...]] = ()
    item_tables: ClassVar[tuple[str, ...]] = ()
    # Adam with L2 on the rows used, a large batch and early stopping: tuned on ML-100K u1 with validation
    # carved from u1.base (AdamW's decoupled decay was no better at these few steps per epoch).
    # On CUDA the batch grows with the data (gpu_batch_scaling; ML-100K keeps 4096, ML-20M gets 65,536).
    default_train: ClassVar[dict[str, Any]] = {"optimizer": "adam", "lr": 0.003, "l2": 0.1,
                                               "batch_size": 4096, "epochs": 40, "patience": 3,
                                               "gpu_batch_scaling": True}
    # Implicit feedback (loss bce): the rating defaults' L2 kept the networks at popularity. These come from
    # bench/implicit.py's search on ML-100K validation carved from training (see BENCHMARKS.md).
    default_train_implicit: ClassVar[dict[str, Any] | None] = {"optimizer": "adam", "lr": 0.003, "l2": 0.001,
                                                               "batch_size": 1024, "epochs": 20, "patience": 3}

    feedbacks = ("explicit", "implicit")

    def __init__(self, config: DeepConfig) -> None:
        super().__init__()
        self.config = config
        self.head = config.head
        self.output_kind = "score" if config.loss == "bce" else "rating"
        self.side = SideFeatures(config)
        self.n_outputs = output_width(self, config.head, config)
        if config.bias:
            self.user_bias = FastEmbedding(config.n_users, 1)
            self.item_bias = FastEmbedding(config.n_items, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)
            self.global_bias = nn.Parameter(torch.tensor(float(config.global_mean)))

    @classmethod
    def from_data(cls, data: Ratings, **options: Any) -> DeepModel:
        """As ``RatingModel.from_data``; the loss defaults to the data's feedback (bce for implicit) and must
        match it.

        Raises:
            ConfigError: as ``RatingModel.from_data``, or a loss that does not fit the data's feedback.
        """
        loss = options.setdefault("loss", "bce" if data.feedback == "implicit" else "rating")
        if (loss == "bce") != (data.feedback == "implicit"):
            raise ConfigError(f"loss {loss!r} learns {'implicit feedback' if loss == 'bce' else 'explicit ratings'}, "
                              f"but the data is {data.feedback}"
                              + (": add --feedback implicit" if loss == "bce" else ": use loss bce"))
        return super().from_data(data, **options)  # type: ignore[return-value]

    @property
    def engines(self) -> tuple[str, ...]:  # type: ignore[override]
        # Implicit feedback needs sampled negatives, which only the "sampled" engine draws.
        return ("sampled",) if self.config.loss == "bce" else ("torch",)

    def loss(self, output: torch.Tensor, ratings: torch.Tensor) -> torch.Tensor:
        """The head's rating loss, or with loss "bce" the binary cross-entropy of logits on 1/0 labels."""
        if self.config.loss == "bce":
            return nn.functional.binary_cross_entropy_with_logits(output, ratings)
        return super().loss(output, ratings)

    def embedding(self, rows: int, dim: int) -> FastEmbedding:
        table = FastEmbedding(rows, dim)
        nn.init.normal_(table.weight, 0.0, self.config.init_std)
        return table

    def output_layer(self, in_width: int) -> nn.Linear:
        """The last Linear; without biases a regression output of ratings starts at the training mean."""
        layer = nn.Linear(in_width, self.n_outputs)
        if self.head == "regression" and not self.config.bias and self.config.loss == "rating":
            nn.init.constant_(layer.bias, self.config.global_mean)
        return layer

    def fill(self, data: Ratings) -> None:
        self.side.fill(data)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.compute(users, items, None)

    def compute(self, users: torch.Tensor, items: torch.Tensor, used: list[torch.Tensor] | None) -> torch.Tensor:
        """The forward pass; looks every penalised row up through ``lookup(..., used)``."""
        raise NotImplementedError  # pragma: no cover

    def lookup(self, table: nn.Embedding, index: torch.Tensor, used: list[torch.Tensor] | None) -> torch.Tensor:
        """``table(index)``, also kept in ``used`` (when given) for the L2 penalty of the same pass."""
        rows = table(index)
        if used is not None:
            used.append(rows)
        return rows

    def forward_with_penalty(self, users: torch.Tensor,
                             items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and ``regularization`` from the rows forward gathered: each table is read and scattered
        into once per step instead of twice (that second lookup was half of a CPU step's gather time)."""
        used: list[torch.Tensor] = []
        output = self.compute(users, items, used)
        return output, sum(rows.square().sum() for rows in used) / users.shape[0]

    def head_input(self, users: torch.Tensor, items: torch.Tensor, tower: torch.Tensor) -> torch.Tensor:
        """What the output layer reads for (user, item) pairs, given the tower's output for them."""
        return tower

    @torch.no_grad()
    def score_all_items(self, users: torch.Tensor) -> torch.Tensor:
        """Every item's prediction for each user (B, n_items), the tower's first layer split in two.

        ``W [p_u; q_i] + b = W_u p_u + (W_i q_i + b)``: the item half is computed once for all items and the
        user half once per user, so the grid skips the gather, the concatenation and the first matrix product
        that dominate a pairwise forward pass. Side features (which the split does not cover) and training mode
        use the pairwise path. Either way the network runs on blocks of at most ``SCORING_CELLS`` cells, so
        memory stays bounded however many users are asked for.
        """
        n_items = self.config.n_items
        rows = max(1, SCORING_CELLS // n_items)
        if self.training or self.side.width or not self.tower_tables:
            blocks = [super().score_all_items(users[start:start + rows]) for start in range(0, len(users), rows)]
            return torch.cat(blocks) if blocks else torch.empty(0, n_items, device=users.device)
        user_table, item_table = (getattr(self, name) for name in self.tower_tables)
        first = self.tower[0]
        user_width = user_table.weight.shape[1]
        item_half = item_table.weight @ first.weight[:, user_width:].T + first.bias
        user_half = user_table(users) @ first.weight[:, :user_width].T
        rest = self.tower[1:]
        all_items = torch.arange(n_items, device=users.device)
        blocks = []
        for start in range(0, len(users), rows):
            block = users[start:start + rows]
            hidden = (user_half[start:start + len(block), None, :] + item_half[None]).reshape(-1, first.out_features)
            grid_users, grid_items = block.repeat_interleave(n_items), all_items.repeat(len(block))
            output = self.output(self.head_input(grid_users, grid_items, rest(hidden)))
            blocks.append(self.to_rating(self.finish(output, grid_users, grid_items)).view(len(block), -1))
        return torch.cat(blocks) if blocks else torch.empty(0, n_items, device=users.device)

    def finish(self, output: torch.Tensor, users: torch.Tensor, items: torch.Tensor,
               used: list[torch.Tensor] | None = None) -> torch.Tensor:
        """(B, 1) → ratings (B,) with biases, or logits (B, C) as they are."""
        if self.head == "classification":
            return output
        output = output.squeeze(-1)
        if self.config.bias:
            output = (output + self.lookup(self.user_bias, users, used).squeeze(-1)
                      + self.lookup(self.item_bias, items, used).squeeze(-1) + self.global_bias)
        return output

    def regularization(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of the squared norms of the user and item rows used (embeddings and biases)."""
        user_tables = [getattr(self, name) for name in self.user_tables]
        item_tables = [getattr(self, name) for name in self.item_tables]
        if self.config.bias:
            user_tables.append(self.user_bias)
            item_tables.append(self.item_bias)
        penalty = sum(table(users).pow(2).sum(-1) for table in user_tables)
        penalty = penalty + sum(table(items).pow(2).sum(-1) for table in item_tables)
        return penalty.mean()

    def user_rows(self) -> dict[str, torch.Tensor]:
        """The new user's embedding rows and bias start at the trained users' mean; his demographics are
        unknown (each feature's "unknown" code), so gradient steps fit his rows alone (``fold_in``)."""
        tables = [*self.user_tables, *(("user_bias",) if self.config.bias else ())]
        rows = {f"{name}.weight": getattr(self, name).weight.detach().mean(0, keepdim=True) for name in tables}
        if "user" in self.config.features:
            rows["side.user_demographics"] = self.side.unknown_user()
        return rows

    def bias_terms(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        if not self.config.bias:
            return None
        return (self.global_bias.detach(), self.user_bias.weight.detach().squeeze(-1),
                self.item_bias.weight.detach().squeeze(-1))


@dataclass(kw_only=True)
class DeepMFConfig(DeepConfig):
    """DeepConfig with DeepMF's own default: no dropout.

    On ML-100K u1 (validation carved from u1.base, 3 seeds) dropout 0.2 gave no better test RMSE than 0 under
    the defaults below (0.9394-0.9415 vs 0.9368-0.9399), and drawing its masks was a third of a CPU step.
    """

    dropout: float = 0.0


class DeepMF(DeepModel):
    """Embeddings concatenated → MLP → one rating (or logits over rating values)."""

    name: ClassVar[str] = "deepmf"
    config_class: ClassVar[Any] = DeepMFConfig
    # Tuned on u1 with validation carved from u1.base (bench/speed_deep.py): Adam at batch 4096, L2 on the
    # rows used plus a little weight decay on everything (the MLP had none), and patience 8, because some
    # seeds plateau for 3-4 epochs before improving again. Larger batches ran faster but ended worse.
    default_train: ClassVar[dict[str, Any]] = {"optimizer": "adam", "lr": 0.01, "l2": 0.3,
                                               "weight_decay": 1e-4, "batch_size": 4096, "epochs": 40,
                                               "patience": 8, "gpu_batch_scaling": True}
    user_tables: ClassVar[tuple[str, ...]] = ("user_embedding",)
    item_tables: ClassVar[tuple[str, ...]] = ("item_embedding",)
    tower_tables: ClassVar[tuple[str, ...]] = ("user_embedding", "item_embedding")

    def __init__(self, config: DeepMFConfig) -> None:
        super().__init__(config)
        user_dim, item_dim = int(config.user_dim), int(config.item_dim)  # resolved by DeepConfig
        self.user_embedding = self.embedding(config.n_users, user_dim)
        self.item_embedding = self.embedding(config.n_items, item_dim)
        in_width = user_dim + item_dim + self.side.width
        self.tower = mlp(in_width, config.layers, batchnorm=config.batchnorm, dropout=config.dropout)
        self.output = self.output_layer(config.layers[-1])

    def compute(self, users: torch.Tensor, items: torch.Tensor, used: list[torch.Tensor] | None) -> torch.Tensor:
        inputs = torch.cat([self.lookup(self.user_embedding, users, used),
                            self.lookup(self.item_embedding, items, used), *self.side(users, items)], dim=-1)
        return self.finish(self.output(self.tower(inputs)), users, items, used)

    def item_embeddings(self) -> torch.Tensor:
        return self.item_embedding.weight.detach()

    def user_embeddings(self) -> torch.Tensor:
        return self.user_embedding.weight.detach()

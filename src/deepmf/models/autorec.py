"""I-AutoRec (Sedhain et al. 2015): an autoencoder over each item's vector of user ratings.

Item i's observed ratings r_i (one entry per user, 0 where unrated) are encoded as h_i = sigmoid(W r_i + b)
and decoded as r_i' = V h_i + c; the prediction for user u is ``<V_u, h_i> + c_u``. That is a dot product of a
user vector (decoder row V_u) and an item vector (code h_i), so ranking every item is one matrix product and
the codes serve as item embeddings.

The model holds the training rating matrix it encodes from, as a CSR of (item -> users, ratings) buffers, so a
saved model is complete; encoding is one rating-weighted embedding bag; memory is O(number of training
ratings), never n_users x n_items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from deepmf.models.bilinear import BilinearModel, csr_bags
from deepmf.models.foldin import FoldInContext
from deepmf.models.layers import ModelConfig, check_positive

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings


@dataclass(kw_only=True)
class AutoRecConfig(ModelConfig):
    """Shapes and options of an I-AutoRec.

    Attributes:
        hidden: width of the item code.
        n_ratings: training ratings stored in the model (filled from the data).
        init_std: standard deviation of the normal initialisation of encoder and decoder weights.
    """

    hidden: int = 350
    n_ratings: int = 0
    init_std: float = 0.03

    data_fields = (*ModelConfig.data_fields, "n_ratings")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("hidden", self.hidden)

    @classmethod
    def data_values(cls, data: Ratings) -> dict[str, Any]:
        return {**super().data_values(data), "n_ratings": len(data)}


class AutoRec(BilinearModel):
    """Item-based AutoRec with a sigmoid encoder and a linear decoder."""

    name: ClassVar[str] = "autorec"
    config_class: ClassVar[Any] = AutoRecConfig
    engines = ("autorec",)
    # Full-batch Rprop (one step per epoch): lr is its initial step, l2 the weight penalty lambda on the
    # summed squared error; early stopping picks the epoch. hidden, lr and l2 from
    # `deepmf tune ml-100k --model autorec --trials 10 --split u1` (validation 0.8998).
    default_train: ClassVar[dict[str, Any]] = {"lr": 0.005, "l2": 87.0, "epochs": 300, "patience": 15}

    def __init__(self, config: AutoRecConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = nn.Embedding(config.n_users, config.hidden)  # row u: W[:, u], the weight of u's rating
        self.encoder_bias = nn.Parameter(torch.zeros(config.hidden))
        self.decoder = nn.Embedding(config.n_users, config.hidden)  # row u: V_u
        self.decoder_bias = nn.Parameter(torch.full((config.n_users,), float(config.global_mean)))
        nn.init.normal_(self.encoder.weight, 0.0, config.init_std)
        nn.init.normal_(self.decoder.weight, 0.0, config.init_std)
        self.register_buffer("item_ptr", torch.zeros(config.n_items + 1, dtype=torch.int64))
        self.register_buffer("rating_users", torch.zeros(config.n_ratings, dtype=torch.int64))
        self.register_buffer("rating_values", torch.zeros(config.n_ratings, dtype=torch.float32))

    def fill(self, data: Ratings) -> None:
        """Store ``data`` (the training ratings) as the item -> (users, ratings) CSR the encoder reads."""
        order = np.argsort(data.items, kind="stable")
        counts = np.bincount(data.items, minlength=self.config.n_items)
        with torch.no_grad():
            self.item_ptr[1:] = torch.from_numpy(np.cumsum(counts))
            self.rating_users.copy_(torch.from_numpy(data.users[order].astype(np.int64)))
            self.rating_values.copy_(torch.from_numpy(data.ratings[order].astype(np.float32)))

    def encode(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """Codes h_i of ``items`` (all when None), (B, hidden): W r_i as one rating-weighted embedding bag."""
        if items is None:
            users, values, offsets = self.rating_users, self.rating_values, self.item_ptr[:-1]
        else:
            positions, offsets = csr_bags(self.item_ptr, items)
            users, values = self.rating_users[positions], self.rating_values[positions]
        weighted_sum = nn.functional.embedding_bag(users, self.encoder.weight, offsets, mode="sum",
                                                   per_sample_weights=values)
        return torch.sigmoid(weighted_sum + self.encoder_bias)

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        return self.decoder(users)

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        if items is None:
            return self.encode()
        distinct, inverse = torch.unique(items, return_inverse=True)
        return self.encode(distinct)[inverse]

    def offsets(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        zero = self.decoder_bias.new_zeros(())
        return zero, self.decoder_bias, self.decoder_bias.new_zeros(self.config.n_items)

    def fold_in_penalties(self, n_ratings: int, context: FoldInContext) -> tuple[float, float]:
        """A new user is a new decoder row V_u and bias c_u against the fixed item codes h_i (the encoder has no
        input for his ratings): the training objective ``sum (r - r')^2 + l2 / 2 |V|^2`` (engines/autorec.py)
        penalises V_u by l2 / 2, whatever his number of ratings, and leaves the bias free."""
        return context.l2 / 2, 0.0

    def bias_terms(self) -> None:
        # The decoder bias is not a rating offset around a mean: let the Recommender estimate cold fallbacks.
        return None

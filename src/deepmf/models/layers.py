"""Pieces shared by the models: the common config fields, output heads, the MLP tower and side-feature inputs.

Side features are looked up from registered buffers (one row per user or item index), so a model built from
its config alone has the right shapes and ``load_state_dict`` restores the tables themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from deepmf.errors import ConfigError

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings

HEADS = ("regression", "classification")
FEATURES = ("genre", "genres", "user")
# Age bucket edges of MovieLens 1M (under 18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+). ML-1M stores the bucket
# code (1, 18, 25, ...) and ML-100K the age in years: both land in the same bucket with these edges.
AGE_EDGES = np.array([18, 25, 35, 45, 50, 56])
N_AGE_BUCKETS = len(AGE_EDGES) + 2  # + the bucket below 18 and one for "unknown"
# More classes than this means the ratings are (near) continuous: a classification head makes no sense.
MAX_CLASSES = 21


@dataclass(kw_only=True)
class ModelConfig:
    """Fields every model config has: shapes and the rating scale come from the data, the rest are options.

    Attributes:
        n_users: rows of the user tables (size of the user id map).
        n_items: rows of the item tables.
        global_mean: mean training rating (starting value of the global bias).
        rating_min: lowest rating of the scale.
        rating_max: highest rating of the scale.
        rating_step: step of the scale (classes of the classification head).
    """

    n_users: int
    n_items: int
    global_mean: float = 0.0
    rating_min: float = 1.0
    rating_max: float = 5.0
    rating_step: float = 1.0

    # Fields filled from the data by ``from_data``; everything else is a user option.
    data_fields = ("n_users", "n_items", "global_mean", "rating_min", "rating_max", "rating_step")

    def __post_init__(self) -> None:
        if self.n_users < 1 or self.n_items < 1:
            raise ConfigError(f"a model needs at least one user and one item, "
                              f"got {self.n_users} x {self.n_items}")
        if not self.rating_max > self.rating_min:
            raise ConfigError(f"rating range {self.rating_min}..{self.rating_max} is empty")

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name not in cls.data_fields]

    @classmethod
    def data_values(cls, data: Ratings) -> dict[str, Any]:
        """The config fields derived from a Ratings (shapes, training mean, scale)."""
        return {"n_users": data.n_users, "n_items": data.n_items, "global_mean": data.global_mean,
                "rating_min": data.scale.minimum, "rating_max": data.scale.maximum,
                "rating_step": data.scale.step}

    @property
    def n_classes(self) -> int:
        return round((self.rating_max - self.rating_min) / self.rating_step) + 1


def check_positive(name: str, value: int) -> None:
    """ConfigError unless ``value`` is a positive int (factor counts, layer widths)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def parse_layers(value: Any) -> tuple[int, ...]:
    """Layer widths from a tuple/list of ints, a string like "64,64", or one int (one layer, as "64" is);
    ConfigError when malformed."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")] if value.strip() else []
        try:
            value = [int(p) for p in parts]  # an empty width ("64,,64", "64,") is a typo, not a layer less
        except ValueError:
            raise ConfigError(f"layers must be comma-separated positive integers, got {value!r}") from None
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"layers must list at least one width, got {value!r}")
    for width in value:
        check_positive("every layer width", width)
    return tuple(int(w) for w in value)


# ---- heads -------------------------------------------------------------------------------------------------
def output_width(model: nn.Module, head: str, config: ModelConfig) -> int:
    """Validate ``head``, register the classification buffers on ``model`` and return the output width.

    The classification head predicts one logit per rating value; ``class_values`` maps classes back to ratings
    and ``class_boundaries`` (midpoints between values) turns a rating into its class for the loss.
    """
    if head not in HEADS:
        raise ConfigError(f"unknown head {head!r}: choose one of {', '.join(HEADS)}")
    if head == "regression":
        return 1
    n_classes = config.n_classes
    if n_classes < 2 or n_classes > MAX_CLASSES:
        raise ConfigError(f"a classification head needs 2..{MAX_CLASSES} rating values; the scale "
                          f"{config.rating_min}..{config.rating_max} by {config.rating_step} has {n_classes}")
    values = config.rating_min + config.rating_step * torch.arange(n_classes, dtype=torch.float32)
    model.register_buffer("class_values", values)
    model.register_buffer("class_boundaries", (values[1:] + values[:-1]) / 2)
    return n_classes


class _GatherRows(torch.autograd.Function):
    """Row lookup whose backward is a single ``index_add_`` into a zero table."""

    @staticmethod
    def forward(ctx: Any, weight: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.n_rows = weight.shape[0]
        return weight.index_select(0, index.reshape(-1)).view(*index.shape, weight.shape[1])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (index,) = ctx.saved_tensors
        flat = grad.reshape(-1, grad.shape[-1])
        return flat.new_zeros(ctx.n_rows, flat.shape[1]).index_add_(0, index.reshape(-1), flat), None


class FastEmbedding(nn.Embedding):
    """``nn.Embedding`` (same parameter, same saved state) with a faster dense backward on the CPU.

    Torch's CPU ``embedding_dense_backward`` took 4x as long as one ``index_add_`` for a 16K batch here, and
    a deep MF step runs it for every table twice (forward and L2 penalty). Sparse gradients, CUDA (whose
    kernel is deterministic, unlike atomic index_add_) and the padding/max_norm options keep torch's path.
    """

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if (self.sparse or weight.device.type != "cpu" or self.padding_idx is not None
                or self.max_norm is not None or not (torch.is_grad_enabled() and weight.requires_grad)):
            return super().forward(index)
        return _GatherRows.apply(weight, index)


def mlp(in_width: int, layers: tuple[int, ...], *, batchnorm: bool, dropout: float) -> nn.Sequential:
    """Linear → [BatchNorm] → ReLU → [Dropout] per width (batch norm before the ReLU, as tutorial 000)."""
    blocks: list[nn.Module] = []
    for width in layers:
        blocks.append(nn.Linear(in_width, width))
        if batchnorm:
            blocks.append(nn.BatchNorm1d(width))
        blocks.append(nn.ReLU())
        if dropout > 0:
            blocks.append(nn.Dropout(dropout))
        in_width = width
    return nn.Sequential(*blocks)


def check_dropout(dropout: float) -> None:
    if not 0 <= dropout < 1:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout}")


# ---- side features -----------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class FeatureConfig(ModelConfig):
    """Config of a model that can take side features.

    Attributes:
        features: subset of FEATURES: "genre" (first genre), "genres" (mean of all genre vectors), "user"
            (age bucket, gender, occupation).
        feature_dim: size of each side-feature embedding.
        n_genres: number of genre columns (data).
        n_genders: gender vocabulary incl. "unknown" (data).
        n_occupations: occupation vocabulary incl. "unknown" (data).
    """

    features: tuple[str, ...] = ()
    feature_dim: int = 8
    n_genres: int = 0
    n_genders: int = 0
    n_occupations: int = 0

    data_fields = (*ModelConfig.data_fields, "n_genres", "n_genders", "n_occupations")

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.features, str):
            self.features = tuple(f.strip() for f in self.features.split(",") if f.strip())
        self.features = tuple(self.features)
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ConfigError(f"unknown feature {unknown[0]!r}: choose from {', '.join(FEATURES)}")
        if len(set(self.features)) != len(self.features):
            raise ConfigError(f"features listed twice: {', '.join(self.features)}")
        check_positive("feature_dim", self.feature_dim)

    @classmethod
    def data_values(cls, data: Ratings) -> dict[str, Any]:
        values = super().data_values(data)
        table = data.item_table
        values["n_genres"] = 0 if table is None or table.genres is None else int(table.genres.shape[1])
        users = data.user_table
        values["n_genders"] = 0 if users is None else len(_vocabulary(users.gender)) + 1
        values["n_occupations"] = 0 if users is None else len(_vocabulary(users.occupation)) + 1
        return values


def _vocabulary(values: np.ndarray) -> list[str]:
    """Sorted distinct non-empty values (code 0 is reserved for unknown, so value k gets code k + 1)."""
    return sorted({str(v) for v in values if str(v) not in ("", "nan", "None")})


def _codes(values: np.ndarray) -> np.ndarray:
    vocab = {v: k + 1 for k, v in enumerate(_vocabulary(values))}
    return np.array([vocab.get(str(v), 0) for v in values], dtype=np.int64)


class SideFeatures(nn.Module):
    """Embeddings of item genres and user demographics, concatenated into extra MLP inputs.

    Built with zero lookup tables from a config; ``fill(data)`` copies the real tables into the buffers.
    """

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.features = config.features
        dim = config.feature_dim
        self.width = 0
        if ("genre" in self.features or "genres" in self.features) and config.n_genres == 0:
            wanted = "genre" if "genre" in self.features else "genres"
            raise ConfigError(f"feature {wanted!r} needs item genres, but the data has none")
        if "genre" in self.features:
            # The last row stands for "no genre listed".
            self.register_buffer("item_first_genre", torch.zeros(config.n_items, dtype=torch.long))
            self.genre_embedding = FastEmbedding(config.n_genres + 1, dim)
            self.width += dim
        if "genres" in self.features:
            # Row-normalised multi-hot, so the product with genre_bag is the mean of the item's genre vectors.
            self.register_buffer("item_genre_weights", torch.zeros(config.n_items, config.n_genres))
            self.genre_bag = nn.Parameter(torch.empty(config.n_genres, dim))
            self.width += dim
        if "user" in self.features:
            if config.n_genders == 0:
                raise ConfigError("feature 'user' needs user demographics (age, gender, occupation), "
                                  "but the data has none")
            self.register_buffer("user_demographics", torch.zeros(config.n_users, 3, dtype=torch.long))
            self.age_embedding = FastEmbedding(N_AGE_BUCKETS, dim)
            self.gender_embedding = FastEmbedding(config.n_genders, dim)
            self.occupation_embedding = FastEmbedding(config.n_occupations, dim)
            self.width += 3 * dim
        self.reset_parameters(0.1)

    def reset_parameters(self, std: float) -> None:
        for parameter in self.parameters():
            nn.init.normal_(parameter, 0.0, std)

    @torch.no_grad()
    def fill(self, data: Ratings) -> None:
        """Copy the item genres and user demographics of ``data`` into the lookup buffers."""
        if "genre" in self.features or "genres" in self.features:
            genres = np.asarray(data.item_table.genres, dtype=bool)  # type: ignore[union-attr]
        if "genre" in self.features:
            first = data.item_table.first_genre  # type: ignore[union-attr]
            first = np.where(first < 0, genres.shape[1], first)
            self.item_first_genre.copy_(torch.from_numpy(first))
        if "genres" in self.features:
            counts = np.maximum(genres.sum(axis=1, keepdims=True), 1)
            self.item_genre_weights.copy_(torch.from_numpy((genres / counts).astype(np.float32)))
        if "user" in self.features:
            table = data.user_table
            age = np.asarray(table.age, dtype=np.int64)  # type: ignore[union-attr]
            bucket = np.where(age < 0, N_AGE_BUCKETS - 1, np.searchsorted(AGE_EDGES, age, side="right"))
            codes = np.stack([bucket, _codes(table.gender), _codes(table.occupation)], axis=1)  # type: ignore
            self.user_demographics.copy_(torch.from_numpy(codes.astype(np.int64)))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> list[torch.Tensor]:
        """The side-feature vectors of each (user, item) pair, as a list of (B, feature_dim) tensors."""
        parts: list[torch.Tensor] = []
        if "genre" in self.features:
            parts.append(self.genre_embedding(self.item_first_genre[items]))
        if "genres" in self.features:
            parts.append(self.item_genre_weights[items] @ self.genre_bag)
        if "user" in self.features:
            demographics = self.user_demographics[users]
            parts.append(self.age_embedding(demographics[:, 0]))
            parts.append(self.gender_embedding(demographics[:, 1]))
            parts.append(self.occupation_embedding(demographics[:, 2]))
        return parts

"""Every registered model passes the Recommender conformance tests (deepmf.testing.conformance).

New models are picked up from the registry automatically; give them small options here when their defaults are
slow on a 2,400-rating data set.
"""

from __future__ import annotations

import pytest

from deepmf.models.registry import MODELS
from deepmf.testing.conformance import ModelSpec, RecommenderConformance

# Small, fast settings per model; a model missing here trains with its registry defaults.
FAST_TORCH = {"epochs": 25, "batch_size": 256, "lr": 0.02, "patience": 0}
SPECS = {
    "mf": ModelSpec("mf", {"factors": 8}, {"epochs": 25, "patience": 0}),
    "deepmf": ModelSpec("deepmf", {"factors": 8, "layers": [16]}, FAST_TORCH),
    "neumf": ModelSpec("neumf", {"factors": 8, "layers": [16]}, FAST_TORCH),
    "bayes": ModelSpec("bayes", {}, {"epochs": 40}),
    "autorec": ModelSpec("autorec", {}, {"epochs": 60}),
    # SVD++'s shipped lr (0.0023) was tuned for 80K ratings; on this 2,400-rating set it needs a larger step.
    "svdpp": ModelSpec("svdpp", {"factors": 8}, {"epochs": 40, "patience": 0, "lr": 0.01}),
    "blend": ModelSpec("blend", {"members": "mf,bayes", "member_options": {"mf": {"factors": 8}},
                                 "member_train": {"bayes": {"epochs": 40}}}),
    # Implicit feedback (checked on planted interactions; see deepmf.testing.conformance).
    "bpr": ModelSpec("bpr", {"factors": 8}, {"epochs": 40, "patience": 0, "lr": 0.05, "l2": 0.001, "threads": 1}),
    "ials": ModelSpec("ials", {"factors": 8}, {"epochs": 8, "threads": 1}),
    "ease": ModelSpec("ease", {"reg": 10.0}),
}
FAST_BCE = {"epochs": 15, "patience": 0, "batch_size": 256, "lr": 0.01}


@pytest.mark.slow
class TestEveryRegisteredModel(RecommenderConformance):
    @pytest.fixture(scope="class", params=sorted(MODELS))
    @classmethod
    def model_spec(cls, request: pytest.FixtureRequest) -> ModelSpec:
        return SPECS.get(request.param, ModelSpec(request.param))


@pytest.mark.slow
class TestClassificationHead(RecommenderConformance):
    model_name = "deepmf"
    model_options = {"factors": 8, "layers": [16], "head": "classification"}  # noqa: RUF012
    train_options = FAST_TORCH


@pytest.mark.slow
class TestDeepModelsOnImplicitFeedback(RecommenderConformance):
    """deepmf and neumf trained as NCF: loss bce with sampled negatives."""

    @pytest.fixture(scope="class", params=["deepmf", "neumf"])
    @classmethod
    def model_spec(cls, request: pytest.FixtureRequest) -> ModelSpec:
        return ModelSpec(request.param, {"factors": 8, "layers": [16], "loss": "bce"}, FAST_BCE)


class TestIALS(RecommenderConformance):
    """iALS in the fast (not slow) suite: the implicit-feedback path end to end."""

    model_name = "ials"
    model_options = {"factors": 8}  # noqa: RUF012
    train_options = {"epochs": 8, "threads": 1}  # noqa: RUF012


class TestSigmoidMF(RecommenderConformance):
    """MF with a sigmoid output has no additive biases: the cold-start fallback uses the data's offsets."""

    model_name = "mf"
    model_options = {"factors": 8, "sigmoid": True}  # noqa: RUF012
    train_options = {**FAST_TORCH, "lr": 0.03}  # noqa: RUF012

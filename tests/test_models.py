"""Models: hand-checked forward passes, shapes, registry validation, side features, classification head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmf.data.idmap import IdMap
from deepmf.data.ratings import ItemTable, Ratings, RatingScale, UserTable
from deepmf.errors import ConfigError, ModelFormatError
from deepmf.models import MODELS, DeepMF, NeuMF, create_model, default_train_options, model_from_config
from deepmf.models.mf import MF

N_USERS, N_ITEMS = 6, 5


def make_ratings(*, half_stars: bool = False, side: bool = True) -> Ratings:
    """Every user rates every item; 3 genres; demographics with one unknown age and gender."""
    users, items = np.meshgrid(np.arange(N_USERS), np.arange(N_ITEMS), indexing="ij")
    users, items = users.ravel().astype(np.int32), items.ravel().astype(np.int32)
    step = 0.5 if half_stars else 1.0
    low = 0.5 if half_stars else 1.0
    values = (low + step * ((users + 2 * items) % (9 if half_stars else 5))).astype(np.float32)
    item_table = user_table = None
    if side:
        genres = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 1], [0, 0, 1]], dtype=bool)
        item_table = ItemTable(np.array([f"m{i}" for i in range(N_ITEMS)], dtype=object), genres,
                               ("Action", "Comedy", "Drama"))
        user_table = UserTable(np.array([10, 20, 30, 47, 60, -1]),
                               np.array(["M", "F", "M", "F", "M", ""], dtype=object),
                               np.array(["doctor", "artist", "doctor", "none", "", "writer"], dtype=object),
                               np.array([""] * N_USERS, dtype=object))
    return Ratings(users, items, values, IdMap(np.arange(N_USERS), "int", "user"),
                   IdMap(np.arange(N_ITEMS), "int", "item"),
                   RatingScale(low, 5.0, step), item_table=item_table, user_table=user_table)


def test_biased_mf_forward_is_dot_plus_biases_by_hand() -> None:
    model = create_model("mf", make_ratings(), factors=2)
    with torch.no_grad():
        model.user_factors.weight[1] = torch.tensor([1.0, 2.0])
        model.item_factors.weight[3] = torch.tensor([0.5, -1.0])
        model.user_bias.weight[1] = 0.25
        model.item_bias.weight[3] = -0.5
        model.global_bias.fill_(3.0)
    # 1*0.5 + 2*(-1) + 0.25 - 0.5 + 3 = 1.25
    assert model(torch.tensor([1]), torch.tensor([3])).item() == pytest.approx(1.25)


def test_mf_without_bias_has_no_bias_parameters_and_is_a_bare_dot_product() -> None:
    model = create_model("mf", make_ratings(), factors=3, bias=False)
    names = {name for name, _ in model.named_parameters()}
    assert names == {"user_factors.weight", "item_factors.weight"}
    expected = model.user_factors.weight[2] @ model.item_factors.weight[4]
    assert model(torch.tensor([2]), torch.tensor([4])).item() == pytest.approx(expected.item(), abs=1e-6)
    assert model.bias_terms() is None


@settings(max_examples=30, deadline=None)
@given(st.floats(-50, 50))
def test_sigmoid_mf_stays_inside_the_widened_rating_range(shift: float) -> None:
    model = create_model("mf", make_ratings(), factors=2, sigmoid=True)
    with torch.no_grad():
        model.global_bias.fill_(shift)
    out = model(torch.arange(N_USERS), torch.arange(N_USERS) % N_ITEMS)
    # 1..5 by 1 is squashed into (0.5, 5.5): every rating is reachable with finite logits.
    assert bool(((out >= 0.5) & (out <= 5.5)).all())


def test_sigmoid_mf_starts_at_the_training_mean() -> None:
    data = make_ratings()
    model = create_model("mf", data, factors=2, sigmoid=True, init_std=0.0)
    assert model(torch.tensor([0]), torch.tensor([0])).item() == pytest.approx(data.global_mean, abs=1e-4)


def test_mf_engines_follow_the_options() -> None:
    data = make_ratings()
    assert create_model("mf", data).engines == ("cuda-sgd", "numba", "torch")
    assert create_model("mf", data, sigmoid=True).engines == ("torch",)
    assert create_model("mf", data, bias=False).engines == ("torch",)
    assert create_model("deepmf", data).engines == ("torch",)


def test_mf_regularization_is_the_mean_squared_norm_of_rows_used() -> None:
    model = create_model("mf", make_ratings(), factors=2)
    with torch.no_grad():
        for table in (model.user_factors, model.item_factors, model.user_bias, model.item_bias):
            table.weight.fill_(1.0)
    # per rating: |p|^2 = 2, |q|^2 = 2, b_u^2 = 1, b_i^2 = 1 -> 6, whatever the batch
    assert model.regularization(torch.tensor([0, 1, 1]), torch.tensor([2, 2, 3])).item() == pytest.approx(6.0)


@pytest.mark.parametrize("name", ["mf", "deepmf", "neumf"])
def test_score_all_items_matches_pairwise_predictions(name: str) -> None:
    model = create_model(name, make_ratings()).eval()
    users = torch.tensor([0, 3, 5])
    grid = model.score_all_items(users)
    assert grid.shape == (3, N_ITEMS)
    pairs = model.predict(users.repeat_interleave(N_ITEMS), torch.arange(N_ITEMS).repeat(3))
    torch.testing.assert_close(grid, pairs.view(3, N_ITEMS))


def test_deepmf_layers_dims_batchnorm_and_dropout_are_built_as_asked() -> None:
    model = create_model("deepmf", make_ratings(), user_dim=3, item_dim=7, layers="10,5", batchnorm=True,
                         dropout=0.3)
    assert isinstance(model, DeepMF)
    assert model.user_embedding.weight.shape == (N_USERS, 3)
    assert model.item_embedding.weight.shape == (N_ITEMS, 7)
    kinds = [type(m).__name__ for m in model.tower]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout"] * 2
    assert model.tower[0].in_features == 10 and model.tower[0].out_features == 10
    assert model.tower[4].out_features == 5 and model.output.in_features == 5
    assert model.tower[3].p == pytest.approx(0.3)


def test_neumf_fuses_gmf_and_mlp_in_one_output_layer() -> None:
    model = create_model("neumf", make_ratings(), factors=4, user_dim=6, item_dim=6, layers=(8,))
    assert isinstance(model, NeuMF)
    assert model.output.in_features == 4 + 8
    assert model.item_embeddings().shape == (N_ITEMS, 10)


def test_side_feature_tables_hold_the_data() -> None:
    model = create_model("deepmf", make_ratings(), features="genre,genres,user", feature_dim=4)
    side = model.side
    # first genres: item 0 -> Action(0), 1 -> Comedy(1), 2 -> none (row 3), 3 -> Action, 4 -> Drama(2)
    assert side.item_first_genre.tolist() == [0, 1, 3, 0, 2]
    torch.testing.assert_close(side.item_genre_weights[0], torch.tensor([0.5, 0.0, 0.5]))
    torch.testing.assert_close(side.item_genre_weights[2], torch.zeros(3))
    # ages 10, 20, 30, 47, 60, unknown -> buckets <18=0, 18-24=1, 25-34=2, 45-49=4, 56+=6, unknown=7
    assert side.user_demographics[:, 0].tolist() == [0, 1, 2, 4, 6, 7]
    # genders: "" -> 0, F -> 1, M -> 2; occupations: "" -> 0, artist 1, doctor 2, none 3, writer 4
    assert side.user_demographics[:, 1].tolist() == [2, 1, 2, 1, 2, 0]
    assert side.user_demographics[:, 2].tolist() == [2, 1, 2, 3, 0, 4]
    assert model.tower[0].in_features == 32 + 32 + 4 * 5
    assert model(torch.tensor([0, 5]), torch.tensor([2, 4])).shape == (2,)


@pytest.mark.parametrize("feature", ["genre", "genres", "user"])
def test_side_features_need_side_tables(feature: str) -> None:
    with pytest.raises(ConfigError, match=feature):
        create_model("deepmf", make_ratings(side=False), features=feature)


@pytest.mark.parametrize("half_stars, n_classes", [(False, 5), (True, 10)])
def test_classification_head_has_one_logit_per_rating_value(half_stars: bool, n_classes: int) -> None:
    data = make_ratings(half_stars=half_stars)
    model = create_model("deepmf", data, head="classification").eval()
    assert model.bias_terms() is None
    users, items = torch.tensor([0, 1]), torch.tensor([1, 2])
    logits = model(users, items)
    assert logits.shape == (2, n_classes)
    expected = logits.softmax(-1) @ model.class_values
    torch.testing.assert_close(model.predict(users, items), expected)
    most_likely = model.predict_most_likely(users, items)
    torch.testing.assert_close(most_likely, model.class_values[logits.argmax(-1)])


def test_classification_loss_uses_the_class_of_each_rating() -> None:
    model = create_model("deepmf", make_ratings(half_stars=True), head="classification")
    logits = torch.zeros(3, 10)
    logits[0, 0] = logits[1, 4] = logits[2, 9] = 50.0  # confident in 0.5, 2.5 and 5.0
    right = model.loss(logits, torch.tensor([0.5, 2.5, 5.0]))
    wrong = model.loss(logits, torch.tensor([1.0, 2.5, 5.0]))
    assert right.item() < 1e-6
    assert wrong.item() == pytest.approx(50.0 / 3, rel=1e-3)


@pytest.mark.parametrize("name, options, message", [
    ("mf", {"factors": 0}, "factors"),
    ("mf", {"layers": "8"}, "unknown option"),
    ("deepmf", {"layers": "8,x"}, "layers"),
    ("deepmf", {"layers": ()}, "layers"),
    ("deepmf", {"layers": (8, 0)}, "layer width"),
    ("deepmf", {"dropout": 1.0}, "dropout"),
    ("deepmf", {"head": "ordinal"}, "head"),
    ("deepmf", {"head": "classification", "bias": True}, "regression head"),
    ("neumf", {"features": "colour"}, "feature"),
    ("transformer", {}, "unknown model"),
])
def test_bad_options_are_config_errors(name: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_model(name, make_ratings(), **options)


def test_continuous_ratings_refuse_a_classification_head() -> None:
    data = make_ratings()
    data = Ratings(data.users, data.items, data.ratings + 0.013, data.user_ids, data.item_ids,
                   RatingScale(1.013, 5.013, 0.01))
    with pytest.raises(ConfigError, match="classification"):
        create_model("deepmf", data, head="classification")


@pytest.mark.parametrize("name, options", [
    ("mf", {"sigmoid": True}),
    ("deepmf", {"features": ("genre", "genres", "user"), "batchnorm": True, "head": "classification"}),
    ("neumf", {"features": ("genres",), "user_dim": 5}),
])
def test_model_from_config_rebuilds_the_same_model(name: str, options: dict) -> None:
    import json

    model = create_model(name, make_ratings(), **options).eval()
    config = json.loads(json.dumps(model.config_dict()))  # as read back from a model folder
    rebuilt = model_from_config(name, config)
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    users, items = torch.arange(N_USERS), torch.arange(N_USERS) % N_ITEMS
    torch.testing.assert_close(rebuilt.predict(users, items), model.predict(users, items))


def test_model_from_config_refuses_a_broken_config() -> None:
    with pytest.raises(ModelFormatError, match="invalid config"):
        model_from_config("mf", {"n_users": 3})


def test_registry_lists_the_models_and_their_training_defaults() -> None:
    assert {"mf", "deepmf", "neumf"} <= set(MODELS)
    assert MODELS["mf"] is MF
    defaults = default_train_options("deepmf")
    assert defaults == DeepMF.default_train and defaults["lr"] > 0
    defaults["lr"] = -1  # a fresh dict each call: callers may edit it
    assert default_train_options("deepmf") == DeepMF.default_train
    assert default_train_options("mf") == MF.default_train != DeepMF.default_train

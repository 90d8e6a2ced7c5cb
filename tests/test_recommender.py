"""Recommender behaviour on a tiny MF with known weights: every expected value is recomputed here by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmf.data.ratings import ItemTable, Ratings
from deepmf.errors import ConfigError, UnknownIdError
from deepmf.models.registry import create_model
from deepmf.recommender import Recommender, SeenRatings
from deepmf.recommender import base as recommender_base

N_USERS, N_ITEMS, K = 7, 9, 3


def _data(seed: int = 0) -> tuple[Ratings, Ratings]:
    """A 7 x 9 data set with raw ids 10, 20, ... and 100, 101, ...; item 108 has no training rating."""
    rng = np.random.default_rng(seed)
    cells = [(u, i) for u in range(N_USERS) for i in range(N_ITEMS) if rng.random() < 0.45 or i == u]
    frame = pd.DataFrame({"user": [10 * (u + 1) for u, _ in cells], "item": [100 + i for _, i in cells],
                          "rating": rng.integers(1, 6, len(cells)).astype(np.float32)})
    data = Ratings.from_frame(frame, name="tiny")
    genres = np.zeros((N_ITEMS, 3), dtype=bool)
    genres[np.arange(N_ITEMS), np.arange(N_ITEMS) % 3] = True
    titles = np.array([f"Movie {i} ({1990 + i})" for i in range(N_ITEMS)], dtype=object)
    data = Ratings(data.users, data.items, data.ratings, data.user_ids, data.item_ids, data.scale,
                   item_table=ItemTable(titles, genres, ("Action", "Comedy", "Drama")), name="tiny")
    train = data.subset(data.items != data.item_ids.index(108))
    return data, train


def _mf(data: Ratings, bias: bool = True, seed: int = 0):
    model = create_model("mf", data, factors=K, bias=bias)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.7)
        if bias:
            model.global_bias.fill_(3.2)
    return model


@pytest.fixture()
def tiny() -> tuple[Recommender, Ratings, Ratings]:
    data, train = _data()
    rec = Recommender(_mf(data), "mf", data.user_ids, data.item_ids, data.scale, data.item_table,
                      SeenRatings.from_ratings(train))
    return rec, data, train


def _weights(rec: Recommender) -> tuple[np.ndarray, ...]:
    m = rec.model
    return (m.user_factors.weight.detach().numpy(), m.item_factors.weight.detach().numpy(),
            m.user_bias.weight.detach().numpy()[:, 0], m.item_bias.weight.detach().numpy()[:, 0],
            float(m.global_bias.detach()))


def _brute_force_scores(rec: Recommender) -> np.ndarray:
    p, q, bu, bi, g = _weights(rec)
    return g + bu[:, None] + bi[None, :] + p @ q.T


def test_predict_matches_hand_formula_and_is_clipped(tiny) -> None:
    rec, data, _ = tiny
    scores = _brute_force_scores(rec)
    u, i = data.user_ids.index(30), data.item_ids.index(104)
    prediction = rec.predict(30, 104)
    assert prediction.prediction == pytest.approx(float(np.clip(scores[u, i], 1, 5)), abs=1e-5)
    assert prediction.cold_start is None
    assert prediction.to_dict() == {"user": 30, "item": 104, "prediction": prediction.prediction}
    with torch.no_grad():
        rec.model.global_bias.fill_(50.0)
    assert rec.predict("30", "104").prediction == 5.0  # ids typed as text are coerced; output clipped


def test_predict_many_and_frame_agree_with_predict(tiny) -> None:
    rec, _, _ = tiny
    users, items = [10, 20, 70, 30], [100, 105, 101, 103]
    many = rec.predict_many(users, items)
    single = [rec.predict(u, i).prediction for u, i in zip(users, items, strict=True)]
    np.testing.assert_allclose(many, single, rtol=1e-6)
    frame = rec.predict_frame(pd.DataFrame({"u": users, "i": items}), user_col="u", item_col="i")
    np.testing.assert_allclose(frame["prediction"].to_numpy(), single, rtol=1e-6)
    with pytest.raises(ConfigError, match="column 'user'"):
        rec.predict_frame(pd.DataFrame({"u": users}))
    with pytest.raises(ConfigError, match="column 'item'"):
        rec.predict_frame(pd.DataFrame({"user": users}))
    with pytest.raises(ConfigError, match="got 2 users but 1 items"):
        rec.predict_many([10, 20], [100])
    # Timestamps: one per pair (MF ignores them), else an error.
    np.testing.assert_array_equal(rec.predict_many(users, items, timestamps=[0, 1, 2, 3]), many)
    with pytest.raises(ConfigError, match="got 1 timestamps for 4 pairs"):
        rec.predict_many(users, items, timestamps=[0])


def test_predict_many_across_chunks(tiny, monkeypatch) -> None:
    rec, data, _ = tiny
    monkeypatch.setattr(recommender_base, "MATMUL_CELLS", 4)  # 4 pairs per chunk
    users = np.repeat(data.user_ids.raw(np.arange(N_USERS)), 8)
    items = np.tile(data.item_ids.raw(np.arange(8)), N_USERS)
    expected = np.clip(_brute_force_scores(rec)[np.repeat(np.arange(N_USERS), 8), np.tile(np.arange(8), N_USERS)],
                       1, 5)
    np.testing.assert_allclose(rec.predict_many(users, items), expected, rtol=1e-5)


def test_predictions_keep_each_maps_id_type() -> None:
    frame = pd.DataFrame({"user": ["042", "042", "7", "7"], "item": [5, 6, 5, 6], "rating": [1.0, 2.0, 4.0, 5.0]})
    data = Ratings.from_frame(frame)
    rec = Recommender(_mf(data), "mf", data.user_ids, data.item_ids, data.scale, None,
                      SeenRatings.from_ratings(data))
    prediction = rec.predict("042", "6")
    assert (prediction.user, prediction.item) == ("042", 6)


def test_unknown_and_untrained_ids_raise_by_default(tiny) -> None:
    rec, _, _ = tiny
    with pytest.raises(UnknownIdError, match="unknown user id 999"):
        rec.predict(999, 100)
    with pytest.raises(UnknownIdError, match="unknown item"):
        rec.predict(10, "nope")
    with pytest.raises(UnknownIdError, match="no training ratings"):
        rec.predict(10, 108)  # in the id map, but never trained
    # Bulk lookups name the first bad id as written, not as a numpy scalar (np.int64(999)).
    with pytest.raises(UnknownIdError, match=r"^unknown user id 999$"):
        rec.predict_frame(pd.DataFrame({"user": [10, 999, 998], "item": [100, 100, 100]}))
    with pytest.raises(UnknownIdError, match=r"^item id 108 has no training ratings"):
        rec.predict_many(np.array([10, 20]), np.array([101, 108]))
    with pytest.raises(UnknownIdError):
        rec.recommend(999)
    with pytest.raises(UnknownIdError):
        rec.similar_items(108)


def test_cold_start_bias_falls_back_and_says_so(tiny) -> None:
    rec, data, _ = tiny
    _, _, bu, bi, g = _weights(rec)
    cold_user = rec.predict(999, 103, cold_start="bias")
    assert cold_user.cold_start == "user"
    assert cold_user.prediction == pytest.approx(np.clip(g + bi[data.item_ids.index(103)], 1, 5), abs=1e-5)
    cold_item = rec.predict(20, 108, cold_start="bias")
    assert cold_item.cold_start == "item"
    assert cold_item.prediction == pytest.approx(np.clip(g + bu[data.user_ids.index(20)], 1, 5), abs=1e-5)
    # The first user and the first item (index 0) have biases too.
    assert rec.predict(10, 108, cold_start="bias").prediction == pytest.approx(
        np.clip(g + bu[0], 1, 5), abs=1e-5)
    assert rec.predict(999, 100, cold_start="bias").prediction == pytest.approx(
        np.clip(g + bi[0], 1, 5), abs=1e-5)
    both = rec.predict(999, 555, cold_start="bias")
    assert both.cold_start == "both" and both.prediction == pytest.approx(np.clip(g, 1, 5))
    assert both.to_dict()["cold_start"] == "both"
    frame = rec.predict_frame(pd.DataFrame({"user": [10, 999], "item": [100, 100]}), cold_start="bias")
    assert frame["cold_start"].tolist() == ["", "user"]
    recs = rec.recommend(999, n=3, cold_start="bias")
    assert recs.attrs["cold_start"] == "user"
    trained_items = np.flatnonzero(rec.seen.item_counts() > 0)
    expected = trained_items[np.argsort(-bi[trained_items], kind="stable")[:3]]
    assert recs["item"].tolist() == data.item_ids.raw(expected).tolist()
    with pytest.raises(ConfigError, match="cold_start"):
        rec.predict(10, 100, cold_start="guess")  # type: ignore[arg-type]


def test_empirical_fallback_without_model_biases() -> None:
    """A model without bias terms falls back to damped mean offsets of the training ratings."""
    data, train = _data()
    rec = Recommender(_mf(data, bias=False), "mf", data.user_ids, data.item_ids, data.scale, None,
                      SeenRatings.from_ratings(train))
    mean = train.ratings.mean(dtype=np.float64)
    i = data.item_ids.index(102)
    item_ratings = train.ratings[train.items == i]
    expected = mean + (item_ratings - mean).sum() / (len(item_ratings) + 10.0)
    assert rec.predict(999, 102, cold_start="bias").prediction == pytest.approx(expected, abs=1e-5)
    # A known user and an untrained item: the user's damped mean offset of what the item offsets leave.
    counts = np.bincount(train.items, minlength=N_ITEMS)
    item_offsets = np.bincount(train.items, train.ratings - mean, N_ITEMS) / (counts + 10.0)
    u = data.user_ids.index(30)
    residual = (train.ratings - mean - item_offsets[train.items])[train.users == u]
    expected = mean + residual.sum() / (len(residual) + 10.0)
    assert rec.predict(30, 108, cold_start="bias").prediction == pytest.approx(expected, abs=1e-5)


def test_recommend_equals_brute_force_ranking_and_excludes_seen(tiny) -> None:
    rec, data, train = tiny
    scores = _brute_force_scores(rec)
    seen = set(zip(train.users.tolist(), train.items.tolist(), strict=True))
    trained = rec.seen.item_counts() > 0
    for user in range(N_USERS):
        allowed = [i for i in range(N_ITEMS) if trained[i] and (user, i) not in seen]
        expected = sorted(allowed, key=lambda i: -scores[user, i])[:4]
        got = rec.recommend(data.user_ids.raw(user), n=4)
        assert got["item"].tolist() == data.item_ids.raw(np.array(expected, dtype=np.int64)).tolist()
        np.testing.assert_allclose(got["score"], np.clip(scores[user, expected], 1, 5), rtol=1e-5)
        assert got["title"].tolist() == [f"Movie {i} ({1990 + i})" for i in expected]
        assert not any((user, data.item_ids.index(i)) in seen for i in got["item"])


def test_records_are_recommend_and_similar_items_as_json_rows(tiny) -> None:
    rec, data, _ = tiny
    for user in data.user_ids.raw(np.arange(N_USERS)).tolist():
        for exclude_seen, min_ratings in ((True, 1), (False, 0), (True, 3)):
            frame = rec.recommend(user, n=5, exclude_seen=exclude_seen, min_ratings=min_ratings)
            records = rec.recommend_records(user, n=5, exclude_seen=exclude_seen, min_ratings=min_ratings)
            assert [r["item"] for r in records] == frame["item"].tolist()
            assert [r["title"] for r in records] == frame["title"].tolist()
            np.testing.assert_allclose([r["score"] for r in records], frame["score"], rtol=1e-6)
            assert all(type(r["score"]) is float and type(r["title"]) is str for r in records)
    for item in data.item_ids.raw(np.arange(3)).tolist():
        frame, records = rec.similar_items(item, n=4), rec.similar_item_records(item, n=4)
        assert [r["item"] for r in records] == frame["item"].tolist()
        np.testing.assert_allclose([r["score"] for r in records], frame["score"], rtol=1e-6)


def test_include_seen_and_short_lists(tiny) -> None:
    rec, data, train = tiny
    scores = _brute_force_scores(rec)
    user = data.user_ids.raw(0)
    everything = rec.recommend(user, n=100, exclude_seen=False)
    trained = np.flatnonzero(rec.seen.item_counts() > 0)
    assert len(everything) == len(trained)  # never more than the trained catalogue, no padding rows
    assert everything["item"].tolist() == data.item_ids.raw(trained[np.argsort(-scores[0, trained])]).tolist()
    unseen = rec.recommend(user, n=100)
    assert len(unseen) == len(trained) - int((train.users == 0).sum())


def test_min_ratings_keeps_only_well_rated_items(tiny) -> None:
    rec, data, train = tiny
    scores = _brute_force_scores(rec)
    counts = rec.seen.item_counts()
    threshold = int(np.median(counts[counts > 0])) + 1
    popular = counts >= threshold
    assert 0 < popular.sum() < (counts > 0).sum()  # the filter bites on this data
    seen = set(zip(train.users.tolist(), train.items.tolist(), strict=True))
    for user in range(N_USERS):
        allowed = [i for i in range(N_ITEMS) if popular[i] and (user, i) not in seen]
        expected = sorted(allowed, key=lambda i: -scores[user, i])[:3]
        got = rec.recommend(data.user_ids.raw(user), n=3, min_ratings=threshold)
        assert got["item"].tolist() == data.item_ids.raw(np.array(expected, dtype=np.int64)).tolist()
    many = rec.recommend_many(data.user_ids.raw(np.arange(N_USERS)), n=3, min_ratings=threshold)
    assert set(many["item"]) <= set(data.item_ids.raw(np.flatnonzero(popular)).tolist())
    similar = rec.similar_items(101, n=20, min_ratings=threshold)
    assert set(similar["item"]) == set(data.item_ids.raw(np.flatnonzero(popular)).tolist()) - {101}
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="min_ratings"):
            rec.recommend(10, min_ratings=bad)
    # 0, the service's default, means what 1 means: any item with a training rating (never an untrained one).
    assert rec.recommend(10, n=5, min_ratings=0).equals(rec.recommend(10, n=5, min_ratings=1))


def test_items_rated_once_are_offered_by_default_and_min_ratings_2_drops_them() -> None:
    data, train = _data()
    once = data.item_ids.index(100)
    first = int(np.flatnonzero(train.items == once)[0])
    train = train.subset((train.items != once) | (np.arange(len(train)) == first))  # item 100: one rating
    rec = Recommender(_mf(data), "mf", data.user_ids, data.item_ids, data.scale, None,
                      SeenRatings.from_ratings(train))
    others = [u for u in range(N_USERS) if u != train.users[first]]
    for user in data.user_ids.raw(np.array(others)):
        assert 100 in rec.recommend(user, n=N_ITEMS)["item"].tolist()
        assert 100 not in rec.recommend(user, n=N_ITEMS, min_ratings=2)["item"].tolist()
    lists = rec.recommend_many(data.user_ids.raw(np.array(others)), n=N_ITEMS)
    assert lists.groupby("user")["item"].apply(lambda items: 100 in set(items)).all()
    assert 100 not in rec.recommend_many([10, 20], n=N_ITEMS, min_ratings=2)["item"].tolist()
    # evaluate ranks over the same candidates: a relevant once-rated item is found in a full-length list.
    user = data.user_ids.raw(others[0])
    held_out = Ratings.from_frame(pd.DataFrame({"user": [user], "item": [100], "rating": [5.0]}), scale=data.scale)
    assert rec.evaluate(held_out, k=N_ITEMS).metrics["recall"] == 1.0


def test_users_without_training_ratings_are_cold() -> None:
    """A user in the id map with no training rating is refused, or gets the fallback list when asked."""
    data, train = _data()
    cold = data.user_ids.index(70)
    train = train.subset(train.users != cold)
    rec = Recommender(_mf(data), "mf", data.user_ids, data.item_ids, data.scale, None,
                      SeenRatings.from_ratings(train))
    with pytest.raises(UnknownIdError, match="user id 70 has no training ratings"):
        rec.recommend(70)
    with pytest.raises(UnknownIdError, match="user id 70 has no training ratings"):
        rec.recommend_many([10, 70])
    with pytest.raises(UnknownIdError, match="user id 70 has no training ratings"):
        rec.predict(70, 101)
    fallback = rec.recommend(70, n=3, cold_start="bias")
    assert fallback.attrs["cold_start"] == "user"
    _, _, _, bi, _ = _weights(rec)
    trained = np.flatnonzero(rec.seen.item_counts() > 0)
    assert fallback["item"].tolist() == data.item_ids.raw(trained[np.argsort(-bi[trained])[:3]]).tolist()
    assert "cold_start" not in rec.recommend(10, n=3).attrs  # user 10 is index 0, and warm


def test_default_list_length_is_ten() -> None:
    # User 4 rated all 30 items (so all are trained); users 1..3 rated three each: 27 candidates left.
    frame = pd.DataFrame({"user": [4] * 30 + [1, 1, 1, 2, 2, 2, 3, 3, 3],
                          "item": list(range(30)) + [0, 1, 2] * 3, "rating": np.arange(39) % 5 + 1.0})
    data = Ratings.from_frame(frame)
    rec = Recommender(_mf(data), "mf", data.user_ids, data.item_ids, data.scale, None,
                      SeenRatings.from_ratings(data))
    assert len(rec.recommend(1)) == 10
    assert rec.recommend_many([1, 2, 3]).groupby("user").size().tolist() == [10, 10, 10]


def test_recommend_many_of_no_users_is_an_empty_table(tiny) -> None:
    rec, _, _ = tiny
    empty = rec.recommend_many([], n=3)
    assert len(empty) == 0 and list(empty.columns) == ["user", "rank", "item", "title", "score"]


def test_recommend_many_matches_recommend_across_chunks(tiny, monkeypatch) -> None:
    rec, data, _ = tiny
    monkeypatch.setattr(recommender_base, "MATMUL_CELLS", 2 * N_ITEMS)  # two users per chunk
    users = data.user_ids.raw(np.arange(N_USERS))
    many = rec.recommend_many(users, n=3)
    for user in users:
        single = rec.recommend(user, n=3)
        part = many[many["user"] == user]
        assert part["item"].tolist() == single["item"].tolist()
        np.testing.assert_array_equal(part["score"].to_numpy(), single["score"].to_numpy())
        assert part["rank"].tolist() == list(range(1, len(single) + 1))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_n_must_be_a_positive_integer(tiny, bad) -> None:
    rec, _, _ = tiny
    with pytest.raises(ConfigError, match="n must be"):
        rec.recommend(10, n=bad)
    with pytest.raises(ConfigError, match="n must be"):
        rec.similar_items(100, n=bad)


def test_rated_vs_predicted(tiny) -> None:
    rec, data, train = tiny
    table = rec.rated_vs_predicted(40)
    assert list(table.columns) == ["item", "title", "rating", "prediction"]
    assert table.index.tolist() == list(range(len(table)))
    u = data.user_ids.index(40)
    mine = train.subset(train.users == u)
    assert sorted(table["item"].tolist()) == sorted(data.item_ids.raw(mine.items).tolist())
    by_item = dict(zip(data.item_ids.raw(mine.items).tolist(), mine.ratings.tolist(), strict=True))
    assert all(by_item[i] == r for i, r in zip(table["item"], table["rating"], strict=True))
    assert table["rating"].is_monotonic_decreasing
    expected = rec.predict_many([40] * len(table), table["item"])
    np.testing.assert_allclose(table["prediction"], expected, rtol=1e-6)


def test_similar_items_exclude_self_and_are_symmetric(tiny) -> None:
    rec, data, _ = tiny
    q = _weights(rec)[1]
    for metric in ("cosine", "dot"):
        sims = rec.similar_items(101, n=20, metric=metric)
        assert 101 not in sims["item"].tolist()
        assert 108 not in sims["item"].tolist()  # untrained item: noise, never offered
        assert sims["score"].is_monotonic_decreasing
        for other, score in zip(sims["item"], sims["score"], strict=True):
            back = rec.similar_items(other, n=20, metric=metric)
            assert back.set_index("item").loc[101, "score"] == pytest.approx(score, abs=1e-5)
    a = data.item_ids.index(101)
    norms = np.linalg.norm(q, axis=1)
    candidates = [j for j in range(N_ITEMS) if j != a and data.item_ids.raw(j) != 108]
    best = max(candidates, key=lambda j: q[a] @ q[j] / (norms[a] * norms[j]))
    top_cosine = rec.similar_items(101, n=1)
    assert top_cosine["item"].iloc[0] == data.item_ids.raw(best)
    assert top_cosine["score"].iloc[0] == pytest.approx(q[a] @ q[best] / (norms[a] * norms[best]), abs=1e-5)
    dots = rec.similar_items(101, n=20, metric="dot").set_index("item")["score"]
    assert dots.loc[data.item_ids.raw(best)] == pytest.approx(q[a] @ q[best], abs=1e-5)
    with pytest.raises(ConfigError, match="metric"):
        rec.similar_items(101, metric="euclid")  # type: ignore[arg-type]


def test_similar_users(tiny) -> None:
    rec, data, _ = tiny
    p = _weights(rec)[0]
    sims = rec.similar_users(10, n=3, metric="dot")
    u = data.user_ids.index(10)
    expected = sorted((j for j in range(N_USERS) if j != u), key=lambda j: -(p[u] @ p[j]))[:3]
    assert sims["user"].tolist() == data.user_ids.raw(np.array(expected)).tolist()


def test_find_item_by_id_or_title(tiny) -> None:
    rec, _, _ = tiny
    assert rec.find_item(103) == 103
    assert rec.find_item("movie 4 (1994)") == 104
    assert rec.find_item("(1996)") == 106
    with pytest.raises(UnknownIdError, match="9 titles match"):
        rec.find_item("Movie")
    with pytest.raises(UnknownIdError, match="no item"):
        rec.find_item("Star Wars")


def test_evaluate_against_an_independent_computation(tiny) -> None:
    rec, data, _ = tiny
    rng = np.random.default_rng(1)
    test = pd.DataFrame({"user": rng.choice(data.user_ids.raw(np.arange(N_USERS)), 30),
                         "item": rng.choice(data.item_ids.raw(np.arange(N_ITEMS)), 30),
                         "rating": rng.integers(1, 6, 30).astype(np.float32)})
    # One rating for the untrained item 108 exercises the cold-start path.
    test = pd.concat([test, pd.DataFrame({"user": [10], "item": [108], "rating": [5.0]})])
    test = test.drop_duplicates(["user", "item"], keep="last")
    test_ratings = Ratings.from_frame(test, scale=data.scale)  # its own id maps: matched by raw id
    result = rec.evaluate(test_ratings, k=3)
    predicted = rec.predict_many(test["user"], test["item"], cold_start="bias")
    m, errors = result.metrics, predicted - test["rating"].to_numpy()
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)), rel=1e-6)
    assert m["mae"] == pytest.approx(np.mean(np.abs(errors)), rel=1e-6)
    assert m["n_cold"] == int((test["item"] == 108).sum())
    assert m["relevant_threshold"] == 4.0 and m["k"] == 3
    # Ranking, recomputed with Python sets from recommend_many.
    relevant = test[test["rating"] >= 4].groupby("user")["item"].apply(set)
    lists = rec.recommend_many(list(relevant.index), n=3).groupby("user")["item"].apply(list)
    precisions = [len(set(lists.get(u, [])) & rel) / 3 for u, rel in relevant.items()]
    recalls = [len(set(lists.get(u, [])) & rel) / len(rel) for u, rel in relevant.items()]
    assert m["n_ranked_users"] == len(relevant)
    assert m["precision"] == pytest.approx(np.mean(precisions))
    assert m["recall"] == pytest.approx(np.mean(recalls))
    recommended = {i for items in lists for i in items}
    assert m["coverage"] == pytest.approx(len(recommended) / int((rec.seen.item_counts() > 0).sum()))
    with pytest.raises(UnknownIdError, match="no training ratings"):
        rec.evaluate(test_ratings, cold_start="error")


def test_evaluate_with_lists_longer_than_the_catalogue(tiny) -> None:
    """k above the number of trained items: short lists are padded, and the padding is never an item or a hit."""
    rec, data, train = tiny
    trained = np.flatnonzero(rec.seen.item_counts() > 0)
    seen = set(zip(train.users.tolist(), train.items.tolist(), strict=True))
    unseen = {u: [i for i in trained if (u, i) not in seen] for u in range(N_USERS)}
    # Every unseen trained item rated 5 by its user: each list of k = 20 holds all of them.
    pairs = [(u, i) for u in range(N_USERS) for i in unseen[u]]
    test = Ratings.from_frame(pd.DataFrame({
        "user": data.user_ids.raw(np.array([u for u, _ in pairs])),
        "item": data.item_ids.raw(np.array([i for _, i in pairs])),
        "rating": np.full(len(pairs), 5.0)}), scale=data.scale)
    m = rec.evaluate(test, k=20).metrics
    users = [u for u in range(N_USERS) if unseen[u]]
    assert m["n_ranked_users"] == len(users)
    assert m["precision"] == pytest.approx(np.mean([len(unseen[u]) / 20 for u in users]))
    assert m["recall"] == 1.0 and m["ndcg"] == pytest.approx(1.0) and m["hit_rate"] == 1.0
    recommended = set().union(*(unseen[u] for u in users))
    assert m["coverage"] == pytest.approx(len(recommended) / len(trained))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 12))
def test_recommendations_never_contain_seen_items(seed: int, n: int) -> None:
    data, train = _data(seed % 50)
    rec = Recommender(_mf(data, seed=seed), "mf", data.user_ids, data.item_ids, data.scale, None,
                      SeenRatings.from_ratings(train))
    lists = rec.recommend_many(data.user_ids.raw(np.arange(N_USERS)), n=n)
    seen = set(zip(data.user_ids.raw(train.users).tolist(), data.item_ids.raw(train.items).tolist(),
                   strict=True))
    assert not any((u, i) in seen for u, i in zip(lists["user"], lists["item"], strict=True))
    assert lists.groupby("user").size().max() <= n

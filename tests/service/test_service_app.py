"""The service app through FastAPI's TestClient (in process, CPU): every endpoint's shape, statuses and limits,
checked against the Recommender's own answers."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deepmf import __version__
from deepmf.recommender import Recommender
from deepmf.service import ServiceSettings, create_app
from deepmf.service.deps import current_recommender


@pytest.fixture(scope="module")
def rec(model_dirs: dict[str, Path]) -> Recommender:
    return Recommender.load(model_dirs["mf"])


@pytest.fixture(scope="module")
def client(model_dirs: dict[str, Path]):
    with TestClient(create_app(model_dirs["mf"])) as client:  # `with` runs the lifespan (loads the model)
        yield client


def test_health(client: TestClient, rec: Recommender) -> None:
    assert client.get("/health").json() == {"status": "ok", "model": "mf", "n_users": rec.n_users,
                                             "n_items": rec.n_items, "version": __version__}


def test_user_recommendations_match_the_python_api(client: TestClient, rec: Recommender) -> None:
    body = client.get("/users/3/recommendations", params={"n": 5}).json()
    expected = rec.recommend(3, n=5)
    assert body["user"] == 3
    assert [row["item"] for row in body["items"]] == expected["item"].tolist()
    assert [row["title"] for row in body["items"]] == expected["title"].tolist()
    assert [row["score"] for row in body["items"]] == pytest.approx(expected["score"].tolist())
    seen = set(rec.rated_vs_predicted(3)["item"])
    assert not seen & {row["item"] for row in body["items"]}
    with_seen = client.get("/users/3/recommendations", params={"n": 5, "include_seen": "true"}).json()
    assert [r["item"] for r in with_seen["items"]] == rec.recommend(3, n=5, exclude_seen=False)["item"].tolist()
    popular = client.get("/users/3/recommendations", params={"n": 40, "min_ratings": 15}).json()
    counts = rec.seen.item_counts()
    assert all(counts[rec.item_ids.index(row["item"])] >= 15 for row in popular["items"])


def test_user_ratings(client: TestClient, rec: Recommender) -> None:
    body = client.get("/users/3/ratings").json()
    expected = rec.rated_vs_predicted(3)
    assert body["user"] == 3
    assert [(r["item"], r["rating"]) for r in body["items"]] == list(zip(expected["item"], expected["rating"],
                                                                         strict=True))
    assert set(body["items"][0]) == {"item", "title", "rating", "prediction"}


def test_similar_items(client: TestClient, rec: Recommender) -> None:
    body = client.get("/items/101/similar", params={"n": 4}).json()
    assert body["item"] == 101 and body["title"] == "Star Film (1977)"
    assert [r["item"] for r in body["similar"]] == rec.similar_items(101, n=4)["item"].tolist()
    assert 101 not in {r["item"] for r in body["similar"]}


def test_predict_pairs(client: TestClient, rec: Recommender) -> None:
    pairs = [{"user": 3, "item": 101}, {"user": "4", "item": "102"}]
    body = client.post("/predict", json={"pairs": pairs}).json()
    assert body["predictions"] == [
        {"user": 3, "item": 101, "prediction": pytest.approx(float(rec.predict(3, 101)))},
        {"user": 4, "item": 102, "prediction": pytest.approx(float(rec.predict(4, 102)))},
    ]


def test_new_user_recommendations_never_return_a_rated_item(client: TestClient, rec: Recommender) -> None:
    ratings = [{"item": 101, "rating": 5}, {"item": 102, "rating": 1}, {"item": 99_999, "rating": 3},
               {"item": 140, "rating": 4}]
    body = client.post("/recommendations", json={"ratings": ratings, "n": 39}).json()
    assert body["unknown_items"] == [99_999, 140]  # 140 is in the id map but was never trained
    items = [row["item"] for row in body["items"]]
    assert not {101, 102} & set(items) and len(items) == 37
    expected = rec.recommend_new_user({101: 5.0, 102: 1.0}, n=39)
    assert items == expected["item"].tolist()


def test_search(client: TestClient) -> None:
    found = client.get("/items", params={"query": "star"}).json()["items"]
    assert [row["item"] for row in found] == [101]
    assert set(found[0]) == {"item", "title", "n_ratings"}
    assert client.get("/items", params={"query": "102"}).json()["items"][0]["item"] == 102
    assert len(client.get("/items", params={"limit": 3}).json()["items"]) == 3
    users = client.get("/users", params={"query": "1"}).json()["users"]
    assert [u["user"] for u in users] == sorted(u["user"] for u in users)
    assert all(str(u["user"]).startswith("1") for u in users) and users[0]["user"] == 1


def test_model_info(client: TestClient, rec: Recommender) -> None:
    info = client.get("/model").json()
    assert info["rating_min"] == 1 and info["rating_max"] == 5 and info["n_trained_items"] == rec.n_items - 1


@pytest.mark.parametrize("path", ["/users/999/recommendations", "/users/abc/ratings", "/items/999/similar",
                                  "/items/140/similar"])
def test_unknown_ids_are_404_with_one_line(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and ("999" in detail or "abc" in detail or "140" in detail)


def test_unknown_pair_is_404(client: TestClient) -> None:
    response = client.post("/predict", json={"pairs": [{"user": 3, "item": 999}]})
    assert response.status_code == 404 and "999" in response.json()["detail"]


@pytest.mark.parametrize("method, path, kwargs", [
    ("get", "/users/3/recommendations", {"params": {"n": 0}}),
    ("get", "/users/3/recommendations", {"params": {"n": -2}}),
    ("get", "/users/3/recommendations", {"params": {"n": 41}}),  # above the 40-item catalogue
    ("get", "/users/3/recommendations", {"params": {"n": "ten"}}),
    ("get", "/users/3/recommendations", {"params": {"min_ratings": -1}}),
    ("get", "/items/101/similar", {"params": {"n": 10_000}}),
    ("get", "/items", {"params": {"limit": 0}}),
    ("post", "/predict", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("post", "/predict", {"content": b"\xff\xfe<\xd3", "headers": {"content-type": "application/json"}}),
    ("post", "/predict", {"json": {"pairs": []}}),
    ("post", "/predict", {"json": {"pairs": [{"user": 3}]}}),
    ("post", "/predict", {"json": {"pairs": [{"user": 3, "item": 101, "extra": 1}]}}),
    ("post", "/predict", {"json": {"pairs": [{"user": True, "item": 101}]}}),
    ("post", "/predict", {"json": {"pairs": [{"user": 3, "item": 101}] * 10_001}}),
    ("post", "/predict", {"json": [1, 2]}),
    ("post", "/recommendations", {"json": {"ratings": [], "n": 3}}),
    ("post", "/recommendations", {"json": {"ratings": [{"item": 101, "rating": 4}], "n": 0}}),
    ("post", "/recommendations", {"json": {"ratings": [{"item": 101, "rating": 4}], "n": 41}}),
    ("post", "/recommendations", {"json": {"ratings": [{"item": 101, "rating": 9}]}}),
    ("post", "/recommendations", {"json": {"ratings": [{"item": 101, "rating": "high"}]}}),
    ("post", "/recommendations", {"json": {"ratings": [{"item": 101, "rating": 4}, {"item": "101", "rating": 3}]}}),
    ("post", "/recommendations", {"json": {"ratings": [{"item": 99_999, "rating": 4}]}}),
])
def test_bad_requests_are_422_with_one_line(client: TestClient, method: str, path: str, kwargs: dict) -> None:
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail and "Traceback" not in detail


def test_nan_rating_is_refused(client: TestClient) -> None:
    body = b'{"ratings": [{"item": 101, "rating": NaN}]}'
    response = client.post("/recommendations", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_request_bodies_are_capped(model_dirs: dict[str, Path]) -> None:
    app = create_app(model_dirs["mf"], ServiceSettings(max_body_bytes=2_000))
    with TestClient(app) as client:
        pairs = {"pairs": [{"user": 3, "item": 101}] * 200}  # about 5 KB
        assert client.post("/predict", json=pairs).status_code == 413

        def chunks():  # no Content-Length: the cap applies while the body is read
            for _ in range(10):
                yield b" " * 500

        response = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500
        assert client.post("/predict", json={"pairs": [{"user": 3, "item": 101}]}).status_code == 200


def test_cors_is_closed_by_default_and_opens_for_named_origins(client: TestClient, model_dirs) -> None:
    preflight = {"origin": "https://elsewhere.example", "access-control-request-method": "GET"}
    assert "access-control-allow-origin" not in client.options("/health", headers=preflight).headers
    assert "access-control-allow-origin" not in client.get("/health", headers={"origin": preflight["origin"]}).headers
    app = create_app(model_dirs["mf"], ServiceSettings(cors_origins=("https://elsewhere.example",)))
    with TestClient(app) as opened:
        response = opened.get("/health", headers={"origin": preflight["origin"]})
        assert response.headers["access-control-allow-origin"] == "https://elsewhere.example"


def test_no_route_touches_the_file_system(client: TestClient) -> None:
    """Only GETs that read the model and POSTs that compute; the static mount serves the page's own files."""
    schema = client.get("/openapi.json").json()
    methods = {method for path in schema["paths"].values() for method in path}
    assert methods <= {"get", "post"}
    assert client.get("/static/../../pyproject.toml").status_code == 404
    assert client.get("/static/%2e%2e/app.py").status_code == 404


def test_page_and_docs_are_served_without_a_network(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "deepmf" in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    docs = client.get("/docs").text
    assert "cdn" not in docs.lower() and "/static-offline-docs/swagger-ui-bundle.js" in docs
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/style.css").text):
        assert "http://" not in text and "https://" not in text  # nothing fetched from elsewhere


def test_reload_swaps_atomically_and_refuses_a_broken_folder(model_dirs, tmp_path: Path, caplog) -> None:
    folder = tmp_path / "model"
    shutil.copytree(model_dirs["mf"], folder)
    with TestClient(create_app(folder)) as client:
        models = client.app.state.models
        request = type("R", (), {"app": client.app})()
        in_flight = asyncio.run(current_recommender(request))  # what a request holds
        shutil.rmtree(folder)
        shutil.copytree(model_dirs["svdpp"], folder)
        assert models.reload()
        assert client.get("/health").json()["model"] == "svdpp"
        assert in_flight.model_name == "mf"  # a request that started before finishes on its model
        (folder / "model.safetensors").write_bytes(b"tampered")
        with caplog.at_level("ERROR", logger="deepmf.service"):
            assert not models.reload()
        assert "reload refused" in caplog.text
        assert client.get("/health").json()["model"] == "svdpp"
        assert client.get("/users/3/recommendations").status_code == 200


def test_without_the_serve_extra_the_error_says_what_to_install(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = (
        "import sys\n"
        "sys.modules['fastapi'] = None\n"  # its import now raises ImportError
        "from deepmf.cli.app import main\n"
        "sys.argv = ['deepmf', 'serve', sys.argv[1]]\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr == ("error: the HTTP service (deepmf serve) needs the optional package fastapi, which is not "
                             "installed: pip install 'deepmf[serve]'\n")


def test_error_statuses() -> None:
    from deepmf.errors import ConfigError, DataError, ModelFormatError, ResourceError, UnknownIdError
    from deepmf.service.errors import status_of

    assert [status_of(exc) for exc in (UnknownIdError("user", 9), ConfigError("n"), DataError("x"),
                                       ModelFormatError("gone"), ResourceError("full"))] == [404, 422, 422, 503, 503]


def test_an_implicit_model_tells_the_page_its_positive_threshold(implicit_model_dir: Path) -> None:
    """/model gives feedback and positive, and a new user's rating at that threshold is an interaction."""
    rec = Recommender.load(implicit_model_dir)
    with TestClient(create_app(implicit_model_dir)) as client:
        info = client.get("/model").json()
        assert info["feedback"] == "implicit" and info["positive"] == 4
        liked = [{"item": 101, "rating": info["positive"]}, {"item": 102, "rating": info["positive"]}]
        body = client.post("/recommendations", json={"ratings": liked, "n": 5}).json()
    expected = rec.recommend_new_user({101: 4.0, 102: 4.0}, n=5)["item"].tolist()
    assert [row["item"] for row in body["items"]] == expected
    assert not {101, 102} & set(expected)


def test_an_explicit_model_says_so(client: TestClient) -> None:
    info = client.get("/model").json()
    assert info["feedback"] == "explicit" and info["positive"] is None

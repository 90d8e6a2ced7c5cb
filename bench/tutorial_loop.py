"""The baseline users leave: the tutorials' per-sample ``Dataset.__getitem__`` + ``DataLoader(512)`` loop.

Benchmark-only code, written the way tutorial 003 (PyTorch, ML-1M) trains: a ``Dataset`` whose
``__getitem__`` builds two small tensors per rating, a shuffling ``DataLoader`` of batch 512 that collates
them, Adam with weight decay, ``loss.item()`` every step, and the test set scored as one batch. MF is the bare
dot product with torch's default N(0, 1) embeddings; deep MF is embeddings concatenated into Linear-ReLU
layers (003: K=10, 10 -> 5). deepmf's trainer is measured against it in bench/train_throughput.py and
bench/speed_mf.py.

    DEEPMF_DATA=../shared/data python bench/tutorial_loop.py --model deepmf --epochs 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class MovieLensDataset(Dataset):
    """One (user, item) pair and its rating per index, as the tutorials write it."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.LongTensor(self.x[idx, :]), torch.FloatTensor(self.y[idx, :])


class TutorialMF(torch.nn.Module):
    def __init__(self, n_users: int, n_items: int, factors: int) -> None:
        super().__init__()
        self.user_emb = torch.nn.Embedding(n_users, factors)
        self.item_emb = torch.nn.Embedding(n_items, factors)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user_emb(users) * self.item_emb(items)).sum(1, keepdim=True)


class TutorialDeepMF(torch.nn.Module):
    def __init__(self, n_users: int, n_items: int, factors: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.user_emb = torch.nn.Embedding(n_users, factors)
        self.item_emb = torch.nn.Embedding(n_items, factors)
        widths = (2 * factors, *hidden)
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.out = torch.nn.Linear(widths[-1], 1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        out = torch.cat((self.user_emb(users), self.item_emb(items)), dim=1)
        for layer in self.layers:
            out = torch.relu(layer(out))
        return self.out(out)


def run(model: str, data: Any, split: Any, *, epochs: int = 2, factors: int = 10,
        hidden: tuple[int, ...] = (10, 5), batch_size: int = 512,
        lr: float = 1e-3, weight_decay: float = 1e-5, seed: int = 0) -> dict[str, Any]:
    """Train the tutorial way on ``split.train``; score ``split.test`` after every epoch.

    Returns:
        {"seconds": training seconds (scoring excluded), "ratings_per_second", "test_rmse" (last epoch),
        "history": per-epoch train/test RMSE, "settings": a short description}.
    """
    torch.manual_seed(seed)
    train = np.stack([split.train.users, split.train.items], axis=1).astype(np.int64)
    test = np.stack([split.test.users, split.test.items], axis=1).astype(np.int64)
    loader = DataLoader(MovieLensDataset(train, split.train.ratings[:, None].astype(np.float32)),
                        batch_size=batch_size, shuffle=True)
    test_loader = DataLoader(MovieLensDataset(test, split.test.ratings[:, None].astype(np.float32)),
                             batch_size=len(test), shuffle=False)
    net: torch.nn.Module = (TutorialMF(data.n_users, data.n_items, factors) if model == "mf"
                            else TutorialDeepMF(data.n_users, data.n_items, factors, hidden))
    criterion = torch.nn.MSELoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    seconds, history = 0.0, []
    for _ in range(epochs):
        start = time.perf_counter()
        net.train()
        train_mse = 0.0
        for batch_idx, (x, r) in enumerate(loader):  # noqa: B007 - the tutorial divides by batch_idx + 1
            optimizer.zero_grad()
            loss = criterion(net(x[:, 0], x[:, 1]), r)
            train_mse += loss.item()
            loss.backward()
            optimizer.step()
        seconds += time.perf_counter() - start
        net.eval()
        with torch.no_grad():
            test_mse = sum(criterion(net(x[:, 0], x[:, 1]), r).item() for x, r in test_loader)
        history.append({"train_rmse": (train_mse / (batch_idx + 1)) ** 0.5, "test_rmse": test_mse ** 0.5})
    return {"seconds": seconds, "ratings_per_second": len(train) * epochs / seconds,
            "test_rmse": history[-1]["test_rmse"], "history": history,
            "settings": f"Adam lr {lr}, wd {weight_decay}, batch {batch_size}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("mf", "deepmf"), default="deepmf")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--factors", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from _common import data_root
    from deepmf.data import load
    from deepmf.data.splits import parse_split

    data = load(data_root() / "ml-100k")
    result = run(args.model, data, parse_split("u1", data)[0], epochs=args.epochs, factors=args.factors)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

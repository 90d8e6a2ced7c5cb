"""The one training loop: epochs, validation, early stopping, progress, history, checkpoints and resume.

Engines (training/engines) only run one epoch of updates; everything around them lives here, so every model
and engine gets the same honest bookkeeping. Models of implicit feedback (``output_kind == "score"``) are
validated by full-ranking NDCG@10 on the validation interactions instead of RMSE (``val_ndcg``; early stopping
keeps the epoch with the highest), and their engines report a training loss (``train_loss``), not an RMSE.
Randomness: the engine shuffles with its own generator seeded by
``config.seed``; dropout draws from torch's global generator, which ``fit`` seeds inside ``fork_rng`` (the
caller's global RNG state is restored afterwards) and saves in every checkpoint.

Under torchrun (a process group of several ranks, training/distributed.py) the same loop trains data-parallel:
every rank runs it, the engine trains the rank's shard of each epoch, rank 0 alone validates (the others get
its RMSE, so early stopping decides alike everywhere), shows progress and writes checkpoints. A checkpoint
holds the unwrapped model, the optimizer state (the same on every rank) and the shuffling generator (shared
by the ranks), so a run resumes with any number of processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from deepmf.device import auto_device_requested, default_torch_threads, resolve_device
from deepmf.errors import ConfigError, ModelFormatError
from deepmf.training.checkpoint import Checkpoint, has_checkpoint, load_checkpoint, save_checkpoint
from deepmf.training.config import TrainConfig
from deepmf.training.distributed import DataParallel, cpu_threads, current_group, rank_seed
from deepmf.training.engines import EngineChoice, create_engine, place, runs_on, select_engine
from deepmf.training.validation import validation_for

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings
    from deepmf.models.base import RatingModel

# Train-config keys that may differ on resume: they change speed, not results.
RESUME_FREE_KEYS = ("threads", "device")
# Engines that can train one model in several processes (they implement ``distribute``).
DATA_PARALLEL_ENGINES = ("torch",)

logger = logging.getLogger(__name__)


@dataclass
class EpochRecord:
    """One epoch of history.

    Attributes:
        epoch: 1-based epoch number.
        train_rmse: RMSE measured during the training pass (train mode: dropout on, weights moving); None for
            implicit-feedback models, which report ``train_loss``.
        val_rmse: RMSE on the validation ratings after the epoch (clipped to the scale), or None.
        seconds: wall time of the epoch including validation.
        ratings_per_second: training ratings processed per second of the training pass.
        val_ndcg: implicit feedback: NDCG@``validation.VALID_K`` on the validation interactions (full ranking), or None.
        train_loss: implicit feedback: the engine's training loss of the epoch (BPR: mean -ln sigmoid; bce:
            mean binary cross-entropy; iALS: its objective per observed pair), None where there is none.
    """

    epoch: int
    train_rmse: float | None
    val_rmse: float | None
    seconds: float
    ratings_per_second: float
    val_ndcg: float | None = None
    train_loss: float | None = None

    @property
    def val_objective(self) -> float | None:
        """What early stopping minimises: validation RMSE, or minus validation NDCG."""
        if self.val_rmse is not None:
            return self.val_rmse
        return None if self.val_ndcg is None else -self.val_ndcg


@dataclass
class TrainResult:
    """What a training run did.

    Attributes:
        history: one record per epoch run (including epochs run before a resume).
        best_epoch: epoch with the lowest validation RMSE, or the highest validation NDCG for implicit
            feedback (the last epoch without validation).
        epochs_run: number of epochs in ``history``.
        train_seconds: total wall time of all epochs.
        ratings_per_second: training ratings per second over all training passes.
        engine: name of the engine used.
        device: the device it trained on ("cpu", "cuda:0").
        effective_options: options the engine derived from the configuration and the device (the torch
            engine's batch size, learning rate and warm-up under ``gpu_batch_scaling``), or empty.
        stopped_early: patience ran out before ``epochs``.
        resumed_from: the epoch a resumed run continued after (0 for a fresh run).
        run_id: identifies the run across resumes (kept in its checkpoints and in the saved model's summary).
        world_size: processes that trained the model together (1 outside torchrun).
        threads: CPU threads the run used (the engine's own count, else torch's).
        engine_note: why the model's preferred engine was passed over ("" when it was not).
        unused_options: training options the engine does not read (none of them was chosen by the user).
        config: the training options as the engine carried them out (``EngineChoice.config``); not part of
            ``to_dict``, the Recommender keeps it as its ``train_config``.
    """

    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    epochs_run: int = 0
    train_seconds: float = 0.0
    ratings_per_second: float = 0.0
    engine: str = ""
    device: str = ""
    effective_options: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False
    resumed_from: int = 0
    run_id: str = ""
    world_size: int = 1
    threads: int = 0
    engine_note: str = ""
    unused_options: list[str] = field(default_factory=list)
    config: TrainConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("config")
        return values


def data_fingerprint(train: Ratings) -> str:
    """A hash of the training ratings and table sizes: resuming on other data is refused."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{train.n_users},{train.n_items},{len(train)}".encode())
    for column in (train.users, train.items, train.ratings):
        digest.update(column.tobytes())
    return digest.hexdigest()


def _canonical(value: Any) -> Any:
    """JSON round trip, so tuples and lists compare equal (a config read back from disk has lists)."""
    return json.loads(json.dumps(value))


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_needs_no_validation(config: TrainConfig, chosen: frozenset[str]) -> None:
    """Refuse a chosen option that acts on validation RMSE when there are no validation ratings (it would be
    silently ignored): early stopping, and the plateau schedule."""
    wanted = []
    if "patience" in chosen and config.patience > 0:
        wanted.append(f"patience={config.patience}")
    if "lr_schedule" in chosen and config.lr_schedule == "plateau":
        wanted.append("lr_schedule=plateau")
    if wanted:
        raise ConfigError(f"{' and '.join(wanted)} act on validation RMSE, and there are no validation ratings "
                          "(a validation fraction of 0?)")


@dataclass
class _RunState:
    """Trainer bookkeeping that a checkpoint must carry."""

    history: list[EpochRecord] = field(default_factory=list)
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False
    best_state: dict[str, torch.Tensor] | None = None


def _status(record: EpochRecord) -> str:
    """The progress bar's text for an epoch: its training and validation numbers."""
    parts = []
    for label, value in (("train", record.train_rmse), ("loss", record.train_loss), ("val", record.val_rmse),
                         ("val NDCG", record.val_ndcg)):
        if value is not None:
            parts.append(f"{label} {value:.4f}")
    return "  ".join(parts)


class Trainer:
    """Train any RatingModel with the engine it supports.

    Args:
        config: training hyperparameters.
        checkpoint_dir: folder for a checkpoint after every epoch (None: no checkpoints).
        resume: continue from the checkpoint in ``checkpoint_dir`` (an error when there is none).
        progress: show a rich progress bar (on stderr).
        on_epoch: called with each EpochRecord after the epoch's checkpoint is written.
    """

    def __init__(self, config: TrainConfig, *, checkpoint_dir: str | Path | None = None, resume: bool = False,
                 progress: bool = True, on_epoch: Callable[[EpochRecord], None] | None = None) -> None:
        if resume and checkpoint_dir is None:
            raise ConfigError("resume needs a checkpoint folder")
        self.config = config
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.resume = resume
        self.progress = progress
        self.on_epoch = on_epoch

    def fit(self, model: RatingModel, train: Ratings, valid: Ratings | None = None) -> TrainResult:
        """Train ``model`` in place on ``train``, validating on ``valid`` after each epoch.

        With ``patience`` and validation ratings, training stops after ``patience`` epochs without a better
        validation RMSE and the best weights are restored.

        Raises:
            ConfigError: bad device/engine/optimizer choices, a diverging run, ``resume`` without a checkpoint,
                or a checkpoint that does not match this model, configuration or data.
            ModelFormatError: a damaged checkpoint folder.
            OutputError: a checkpoint could not be written (see ``save_checkpoint``).
        """
        if self.resume and not has_checkpoint(self.checkpoint_dir):  # type: ignore[arg-type]
            raise ConfigError(f"nothing to resume: {self.checkpoint_dir} holds no checkpoint")
        device = resolve_device(self.config.device)
        group = current_group(device)
        if group is not None:
            device = group.device
        checkpoint = load_checkpoint(self.checkpoint_dir) if self.resume else None  # type: ignore[arg-type]
        device, choice = self._choose_engine(model, device, group, checkpoint, len(train))
        config = choice.config
        if choice.note and (group is None or group.is_main):
            logger.warning("%s: training with the %s engine (%s)", model.name, choice.name, choice.note)
        if valid is None or len(valid) == 0:
            _check_needs_no_validation(config, config.chosen_options(model.default_train))
        fork_devices = [device.index or 0] if device.type == "cuda" else []
        threads = config.threads
        if threads is None and device.type == "cpu":
            threads = cpu_threads(group.env) if group is not None else default_torch_threads(len(train))
        with _threads(threads), torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(config.seed)
            engine_name = choice.name
            engine = create_engine(engine_name, model, train, config, device)
            threads_used = int(getattr(engine, "threads", torch.get_num_threads()))
            logger.info("%s: %d training ratings, %d validation, engine %s, %d thread(s) on %s", model.name,
                        len(train), 0 if valid is None else len(valid), engine_name, threads_used, device)
            info = {"model": {"name": model.name, "config": _canonical(model.config_dict())},
                    "train_config": config.to_dict(), "fingerprint": data_fingerprint(train),
                    "engine": engine_name, "run_id": uuid.uuid4().hex}
            run = _RunState()
            if checkpoint is not None:
                self._restore(checkpoint, model, engine, run, info, device)
            resumed_from = len(run.history)
            if group is not None:
                self._join(group, engine, info, resumed_from)
            has_valid = valid is not None and len(valid) > 0
            validator = validation_for(model, train, valid, device) if has_valid else None
            self._loop(model, engine, train, validator, run, info, device, group)
        if run.best_state is not None and config.patience > 0:
            model.load_state_dict(run.best_state)
        history = run.history
        train_time = sum(len(train) / r.ratings_per_second for r in history if r.ratings_per_second > 0)
        return TrainResult(
            history=history,
            best_epoch=run.best_epoch if validator is not None else len(history),
            epochs_run=len(history),
            train_seconds=sum(r.seconds for r in history),
            ratings_per_second=len(train) * len(history) / train_time if train_time > 0 else 0.0,
            engine=engine_name,
            device=str(device) if device.type == "cpu" else f"{device.type}:{device.index or 0}",
            effective_options=dict(getattr(engine, "effective_options", {})),
            stopped_early=run.stopped_early,
            resumed_from=resumed_from,
            run_id=info["run_id"],
            world_size=1 if group is None else group.env.world_size,
            threads=threads_used,
            engine_note=choice.note,
            unused_options=list(choice.unused),
            config=config,
        )

    def _choose_engine(self, model: RatingModel, device: torch.device, group: DataParallel | None,
                       checkpoint: Checkpoint | None, n_ratings: int) -> tuple[torch.device, EngineChoice]:
        """(device, engine): ``place``'s choice; with ``auto``, the resumed run's engine; under torchrun a
        data-parallel one on the group's device.

        Raises:
            ConfigError: no engine of the model can do what is asked (e.g. Bayesian MF under torchrun).
        """
        config = self.config
        allowed: tuple[str, ...] = getattr(model, "engines", ("torch",))
        if config.engine == "auto" and checkpoint is not None:
            saved = str(checkpoint.info.get("engine"))
            if saved in allowed and (group is None or saved in DATA_PARALLEL_ENGINES):
                cpu = torch.device("cpu")
                if runs_on(saved, device):
                    return device, self._pinned(model, device, saved)
                if group is None and auto_device_requested(config.device) and runs_on(saved, cpu):
                    return cpu, self._pinned(model, cpu, saved)
        if group is None:
            return place(model, config, n_ratings)
        choice = select_engine(model, config, device)
        if choice.name in DATA_PARALLEL_ENGINES:
            return device, choice
        parallel = [e for e in allowed if e in DATA_PARALLEL_ENGINES]
        tuned = getattr(model, "tuned_engines", None) or allowed
        switch = [e for e in parallel if e in tuned]
        if config.engine == "auto" and switch:
            return device, self._pinned(model, device, switch[0],
                                        f"its default engine, {choice.name}, runs in one process; this job "
                                        f"has {group.env.world_size}")
        hint = ""
        if parallel and config.engine == "auto":
            hint = (f" (or pass --engine {parallel[0]}, whose results with this model's default settings are "
                    f"worse: they were tuned for engine {choice.name!r})")
        elif parallel:
            hint = f" (or pass --engine {parallel[0]})"
        raise ConfigError(f"model {model.name!r} with engine {choice.name!r} trains in one process: run it "
                          f"without torchrun{hint}")

    def _pinned(self, model: RatingModel, device: torch.device, engine: str, note: str = "") -> EngineChoice:
        """``select_engine`` held to ``engine`` (it still refuses options that engine cannot honour); the run
        records the configured engine (``auto``), so a resumed run's options compare equal."""
        choice = select_engine(model, replace(self.config, engine=engine), device)
        config = replace(choice.config, engine=self.config.engine)
        return replace(choice, config=config, note="; ".join(n for n in (choice.note, note) if n))

    def _join(self, group: DataParallel, engine: Any, info: dict[str, Any], resumed_from: int) -> None:
        """Check that every rank trains the same thing from the same epoch, then hand the engine the group."""
        # run_id is each process's own draw; only rank 0's is ever written.
        same = {**{k: v for k, v in info.items() if k != "run_id"},
                "train_config": {k: v for k, v in info["train_config"].items() if k not in RESUME_FREE_KEYS},
                "epoch": resumed_from}
        group.check_same(json.dumps(same, sort_keys=True),
                         "training data, options or checkpoint epoch (run the same command on the same data; "
                         "with --resume, the checkpoint folder must be on storage every machine sees)")
        if not group.is_main:
            # Dropout masks: each rank its own stream. Rank 0's is the one a checkpoint carries, as in one process.
            torch.manual_seed(rank_seed(self.config.seed, group.env.rank, resumed_from))
        engine.distribute(group)

    # ---- the epoch loop ------------------------------------------------------------------------------------
    def _loop(self, model: RatingModel, engine: Any, train: Ratings,
              validator: Callable[[], dict[str, float]] | None, run: _RunState, info: dict[str, Any],
              device: torch.device, group: DataParallel | None) -> None:
        config = self.config
        first = len(run.history) + 1
        if run.stopped_early or first > config.epochs:
            return
        scores = model.output_kind == "score"
        main = group is None or group.is_main
        with self._progress_bar(main) as bar:
            task = bar.add_task("training", total=config.epochs, completed=first - 1, status="")
            for epoch in range(first, config.epochs + 1):
                started = time.perf_counter()
                train_value = engine.train_epoch(epoch)
                train_seconds = time.perf_counter() - started
                train_value = train_value if math.isfinite(train_value) else None
                # Rank 0 alone validates; the others get its number, so early stopping decides alike everywhere.
                validation = validator() if validator is not None and main else {}
                if validator is not None and group is not None:
                    key = "val_ndcg" if scores else "val_rmse"
                    validation = {key: group.broadcast_float(validation.get(key))}
                record = EpochRecord(epoch, None if scores else train_value, validation.get("val_rmse"),
                                     time.perf_counter() - started, len(train) / max(train_seconds, 1e-9),
                                     val_ndcg=validation.get("val_ndcg"),
                                     train_loss=train_value if scores else None)
                step_schedule = getattr(engine, "step_schedule", None)
                if step_schedule is not None:
                    step_schedule(record.val_objective)
                run.history.append(record)
                self._track_best(model, run, record)
                if self.checkpoint_dir is not None and main:
                    self._save(model, engine, run, info, device)
                status = _status(record)
                logger.debug("epoch %d: %s, %.2f s", epoch, status, record.seconds)
                bar.update(task, advance=1, status=status)
                if self.on_epoch is not None:
                    self.on_epoch(record)
                if run.stopped_early:
                    break

    def _track_best(self, model: RatingModel, run: _RunState, record: EpochRecord) -> None:
        objective = record.val_objective
        if objective is None:
            return
        if objective < run.best_val:
            run.best_val, run.best_epoch, run.bad_epochs = objective, record.epoch, 0
            if self.config.patience > 0:
                run.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            run.bad_epochs += 1
            run.stopped_early = 0 < self.config.patience <= run.bad_epochs
        if not math.isfinite(objective):
            raise ConfigError(f"validation {'RMSE' if record.val_rmse is not None else 'NDCG'} is not finite "
                              f"after epoch {record.epoch}: lower the learning rate (now {self.config.lr})")

    def _progress_bar(self, main: bool) -> Progress:
        return Progress(TextColumn("epoch"), MofNCompleteColumn(), BarColumn(),
                        TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                        console=Console(stderr=True), disable=not (self.progress and main), transient=True)

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def _save(self, model: RatingModel, engine: Any, run: _RunState, info: dict[str, Any],
              device: torch.device) -> None:
        rng = {"cpu": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        state = {"engine": engine.state_dict(), "rng": rng,
                 "trainer": {"best_val": run.best_val if math.isfinite(run.best_val) else None,
                             "best_epoch": run.best_epoch, "bad_epochs": run.bad_epochs,
                             "stopped_early": run.stopped_early}}
        document = {**info, "epoch": len(run.history), "history": [asdict(r) for r in run.history]}
        save_checkpoint(self.checkpoint_dir, info=document, model_state=model.state_dict(),  # type: ignore[arg-type]
                        best_state=run.best_state, state=state)

    def _restore(self, checkpoint: Checkpoint, model: RatingModel, engine: Any, run: _RunState,
                 info: dict[str, Any], device: torch.device) -> None:
        saved = checkpoint.info
        folder = self.checkpoint_dir
        saved_model = saved.get("model", {})
        if saved_model.get("name") != info["model"]["name"]:
            raise ConfigError(f"{folder}: checkpoint is of model {saved_model.get('name')!r}, "
                              f"not {info['model']['name']!r}")
        if saved.get("fingerprint") != info["fingerprint"]:
            raise ConfigError(f"{folder}: checkpoint was written for other training data")
        if saved_model.get("config") != info["model"]["config"]:
            changed = sorted(k for k in info["model"]["config"]
                             if saved_model.get("config", {}).get(k) != info["model"]["config"][k])
            raise ConfigError(f"{folder}: checkpoint was written with other model options "
                              f"({', '.join(changed)})")
        saved_train = saved.get("train_config", {})
        changed = sorted(k for k, v in info["train_config"].items()
                         if k not in RESUME_FREE_KEYS and saved_train.get(k) != v)
        if changed:
            raise ConfigError(f"{folder}: checkpoint was written with other training options "
                              f"({', '.join(changed)})")
        if saved.get("engine") != info["engine"]:
            raise ConfigError(f"{folder}: checkpoint was written by engine {saved.get('engine')!r}, "
                              f"not {info['engine']!r}")
        info["run_id"] = saved.get("run_id") or info["run_id"]
        try:
            self._load_state(checkpoint, model, engine, run, device)
        except (TypeError, KeyError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFormatError(f"{folder}: damaged checkpoint ({reason}); train without --resume to start "
                                   "afresh") from None

    @staticmethod
    def _load_state(checkpoint: Checkpoint, model: RatingModel, engine: Any, run: _RunState,
                    device: torch.device) -> None:
        """Put the checkpoint's weights, engine, RNG and trainer state in place (raises on a damaged one)."""
        saved = checkpoint.info
        model.load_state_dict({k: v.to(device) for k, v in checkpoint.model_state.items()})
        engine.load_state_dict(checkpoint.state["engine"])
        torch.set_rng_state(checkpoint.state["rng"]["cpu"])
        if device.type == "cuda" and "cuda" in checkpoint.state["rng"]:
            torch.cuda.set_rng_state(checkpoint.state["rng"]["cuda"], device)
        trainer_state = checkpoint.state["trainer"]
        run.history = [EpochRecord(**r) for r in saved.get("history", [])]
        best_val = trainer_state["best_val"]
        run.best_val = math.inf if best_val is None else best_val
        run.best_epoch = trainer_state["best_epoch"]
        run.bad_epochs = trainer_state["bad_epochs"]
        run.stopped_early = trainer_state["stopped_early"]
        run.best_state = ({k: v.to(device) for k, v in checkpoint.best_state.items()}
                          if checkpoint.best_state is not None else None)

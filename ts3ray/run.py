"""One lottery run: Algorithm 2 (IMP rounds) around a method's training (TS3-Net's
Algorithm 1, or a competitor; ts3ray/method/registry.py).

`LotteryRun` is a plain object with no knowledge of Ray: iterate `run.epochs()` to train,
one epoch record at a time; `state_dict()` / `load_state_dict()` capture and restore the
whole run (networks, optimisers, masks, initial weights, counters, the rows written so far)
so that a resumed run produces the same numbers as an uninterrupted one.

Level k (k = 0..R) trains S under the mask of k pruning rounds, so training level k *is* the
retrain of mask k: one run records sparsities 0, p_f, 1-(1-p_f)^2, ..., 1-(1-p_f)^R.
"""
from __future__ import annotations

import hashlib
import math
import sys
import time
import types
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from ts3ray import pruning
from ts3ray.accel import Acceleration, peak_memory_mb, reset_peak_memory, static_shapes
from ts3ray.config import RunConfig
from ts3ray import data
from ts3ray.data import DeviceBatches
from ts3ray.data.core.metrics import topk_correct
from ts3ray.data.core.prepared import EvalSet as PreparedEval
from ts3ray.data.core.streaming import StreamingBatches
from ts3ray.devices import check_device_exists
from ts3ray.errors import ConfigError
from ts3ray.method.base import EpochContext, EpochStats, Net
from ts3ray.method.protocols import apply_schedule, make_optimizer, schedule_position
from ts3ray.method.registry import resolve_method
from ts3ray.method.selection import make_selector
from ts3ray.models import build_model

STATE_VERSION = 3  # 3: per-method optimisers and schedules (protocols)
TAIL_EPOCHS = 10  # Co-teaching / JoCoR report the mean test accuracy of the last 10 epochs
JOINT = "S+D"  # optimiser key of networks trained by one optimiser (JoCoR)


def derive_seed(seed: int, purpose: str) -> int:
    """Independent, reproducible seeds for each random stream of a run."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def resolve_device(name: str) -> torch.device:
    """`auto`: the GPU when there is one; otherwise the named device, which must exist here
    (ConfigError, one line, instead of torch's error at the first tensor)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device_exists(name)
    return torch.device(name)


@dataclass
class TrainingData:
    """Everything the stages read, on (or streamed to) the training device.

    `batches`, `true_y`, `label_known` and `label_is_clean` cover the samples S and D train on
    (the whole training set, or all but the held-out part when val_fraction > 0); sample
    indices in the stages index these. `true_y` is -1 where a dataset does not know a
    training sample's clean label (ANIMAL-10N, WebVision): label precision and relabel
    accuracy count only the samples whose label is known. `eval_sets` holds what networks
    are scored on each epoch: "test" (the primary test set) and any further named test sets
    (WebVision: "ilsvrc12_val"), "val" (the held-out noisy labels) and "clean_val" (a
    dataset's own clean validation set) where they exist. `test_sets` names the test sets.
    """

    batches: DeviceBatches | StreamingBatches  # training images with the *noisy* labels
    true_y: torch.Tensor
    label_known: torch.Tensor
    label_is_clean: torch.Tensor  # noisy label == known clean label
    eval_sets: dict[str, PreparedEval]
    test_sets: tuple[str, ...]
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    path: str  # "device" or "stream"
    device: torch.device

    def train_eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The training set in order, no augmentation, with the noisy labels (for GMM)."""
        for x, y, _ in self.batches.in_order():
            yield x, y

    @torch.no_grad()
    def accuracies(self, model: nn.Module | dict[str, nn.Module],
                   names: tuple[str, ...] | None = None, *,
                   top5: bool = False) -> dict[str, torch.Tensor]:
        """Accuracy on every eval set as 0-dim device tensors (read back with the epoch's
        stats): {"test": ..., "val": ..., "clean_val": ...} for the sets that exist, and with
        `top5` also {"test_top5": ...} for each test set (Table VI).

        `model` is one network, or a dict of networks of which `names` are evaluated by
        the argmax of their summed logits (DivideMix's two-network prediction)."""
        models = {"_": model} if isinstance(model, nn.Module) else model
        names = ("_",) if isinstance(model, nn.Module) else tuple(names or models)
        modes = {n: models[n].training for n in names}
        for n in names:
            models[n].eval()
        out = {}
        for name, part in self.eval_sets.items():
            ks = (1, 5) if top5 and name in self.test_sets and self.num_classes > 5 else (1,)
            correct = torch.zeros(len(ks), dtype=torch.int64, device=self.device)
            for x, y, _ in part.batches():
                logits = models[names[0]](x)
                for n in names[1:]:
                    logits = logits + models[n](x)
                correct += topk_correct(logits, y, ks)
            out[name] = correct[0].double() / part.num_samples
            if len(ks) > 1:
                out[f"{name}_top5"] = correct[1].double() / part.num_samples
        for n in names:
            models[n].train(modes[n])
        return out


def local_root(config: RunConfig) -> str:
    """This node's copy of the run's data root (a URI: data/cache.py), checked here, where
    the run happens."""
    root = data.local_data_root(config.data_root)
    if root != config.data_root:
        data.check_available(config.dataset, root)
    return root


def load_run_dataset(config: RunConfig):
    """The dataset the run trains on, loaded (for runs that share one: fused arrays)."""
    return data.load_for_run(config.dataset, local_root(config), seed=config.seed)


def prepare_data(config: RunConfig, device: torch.device, dataset=None):
    """The run's data through data.prepare_data: its dataset's data path (device-resident or
    streamed), labels (noise drawn from T, CIFAR-N, a real-world set's own), the seeded
    hold-out of the noisy training set (drawn after the noise, stratified by noisy label,
    identical for S and D, never trained on) and every eval set."""
    root = local_root(config)
    p = data.prepare_data(
        config.dataset, root, noise=config.noise, noise_rate=config.noise_rate,
        noise_seed=derive_seed(config.seed, "noise"), batch_seed=derive_seed(config.seed, "batches"),
        batch_size=config.batch_size, eval_batch_size=config.eval_batch_size, device=device,
        noise_labels=config.noise_labels, convention=config.noise_convention,
        data_path=config.data_path, workers=config.data_workers, load_seed=config.seed,
        dataset=dataset, val_fraction=config.val_fraction, val_seed=derive_seed(config.seed, "val"),
        drop_last=static_shapes(config.compile))  # CUDA graphs: one batch shape (accel.py)
    tests = list(p.tests.items())
    eval_sets = {"test": tests[0][1], **dict(tests[1:])}  # the first is the primary test set
    if p.holdout is not None:
        eval_sets["val"] = p.holdout
    if p.val is not None:
        eval_sets["clean_val"] = p.val
    test_sets = ("test", *(name for name, _ in tests[1:]))
    return (TrainingData(batches=p.train, true_y=p.true_y, label_known=p.label_known,
                         label_is_clean=p.label_is_clean, eval_sets=eval_sets, test_sets=test_sets,
                         num_classes=p.num_classes, in_channels=p.in_channels,
                         image_size=p.image_size, path=p.path, device=device), p.noisy)


@dataclass
class EpochStart:
    """An epoch between LotteryRun.begin_epoch and finish_epoch."""

    stage: str
    lr: float
    stats: EpochStats
    ctx: EpochContext
    nets: dict[str, Net]
    started: float


class LotteryRun:
    """Algorithm 2 over any method: for r = 1..R: train a level; prune p_f of the pruned
    networks (each by its own magnitudes); reset every network to its initial weights."""

    def __init__(
        self,
        config: RunConfig,
        *,
        dataset=None,  # an ImageDataset or FileImageDataset already loaded (tests, benchmarks)
        device: torch.device | str | None = None,
    ):
        self.config = config
        self.method = resolve_method(config)
        self.device = torch.device(device) if device is not None else resolve_device(config.device)
        self.accel = Acceleration(config, self.device)
        self.data, self.noisy = prepare_data(config, self.device, dataset)
        if self.data.path == "stream" and self.method.needs_resident_data:
            raise ConfigError("method", config.method, "a method that reads its training images "
                              "by index (itlm, dividemix) needs device-resident data, but "
                              f"{config.dataset} streams from disk here (data_path=stream)")
        self.selector = make_selector(config)
        d = self.data
        shape = dict(num_classes=d.num_classes, in_channels=d.in_channels, image_size=d.image_size)
        # S and D start from different initialisations (Sec. IV-A)
        self.models: dict[str, nn.Module] = {
            n: build_model(config.arch, seed=derive_seed(config.seed, n), init=config.init,
                           **shape).to(self.device)
            for n in self.method.networks
        }
        self.init_states = {n: _clone_state(m) for n, m in self.models.items()}
        for model in self.models.values():
            self.accel.prepare(model)  # memory format, torch.compile (in place)
        self.masks = {
            n: pruning.init_masks(m, include_output=config.prune_output)
            for n, m in self.models.items()
            if n in self.method.pruned
        }
        self.level = 0  # IMP round whose mask is being trained (0 = dense)
        self.epoch = 0  # epochs finished in this level
        self.method_state: dict[str, torch.Tensor] = {}  # a method's state within a level
        self.epoch_rows: list[dict[str, Any]] = []
        self.level_rows: list[dict[str, Any]] = []
        self.tickets = None  # a TicketStore (ticket_store.py): level_done() at every level end
        self._new_optimizers()
        self.total_params = pruning.total_params(self.sparse_model)

    # -- structure ----------------------------------------------------------------
    @property
    def sparse_model(self) -> nn.Module:
        return self.models["S"]

    @property
    def dense_model(self) -> nn.Module | None:
        return self.models.get("D")

    def _optimizer_key(self, name: str) -> str:
        """Networks sharing one optimiser (JoCoR) find it under one key."""
        return JOINT if self.method.joint_optimizer else name

    def _parameters_of(self, key: str) -> list:
        return [p for name, model in self.models.items() if self._optimizer_key(name) == key
                for p in model.parameters()]

    def _new_optimizers(self) -> None:
        """The protocol's optimiser(s), fresh: every level is a full retraining."""
        keys = dict.fromkeys(self._optimizer_key(name) for name in self.models)
        self.optimizers = {key: make_optimizer(self._parameters_of(key), self.config)
                           for key in keys}

    def nets(self) -> dict[str, Net]:
        """The networks as the methods' epoch steps take them."""
        return {n: Net(m, self.optimizers[self._optimizer_key(n)], self.masks.get(n),
                       self.config.grad_clip)
                for n, m in self.models.items()}

    def _schedule(self, epoch: int) -> float:
        """Set the protocol's lr (and Adam's beta1) for 0-based `epoch` of the level."""
        position = schedule_position(epoch, self.method.segment(epoch), self.config.epochs)
        return apply_schedule(self.optimizers.values(), self.config, position)

    def epoch_context(self, stats: EpochStats | None = None) -> EpochContext:
        """The context of the next epoch (benchmarks call a stage directly with it)."""
        c = self.config
        return EpochContext(config=c, data=self.data, options=self.method.options,
                            key=self.global_epoch, epoch=self.epoch,
                            stats=stats or EpochStats(self.device),
                            seed=derive_seed(c.seed, "method"),
                            select_rate=self.method.select_rate or 0.0, selector=self.selector,
                            state=self.method_state)

    def _reinit(self, nets: dict[str, Net]):
        """ctx.reinit: a network back to the level's masked initial weights with a fresh
        optimiser at the current schedule position (ITLM's rounds)."""
        def reinit(name: str) -> None:
            pruning.reset_to_init(self.models[name], self.init_states[name],
                                  self.masks.get(name, {}))
            key = self._optimizer_key(name)
            self.optimizers[key] = make_optimizer(self._parameters_of(key), self.config)
            for net_name, net in nets.items():
                if self._optimizer_key(net_name) == key:
                    net.optimizer = self.optimizers[key]
            self._schedule(self.epoch)

        return reinit

    @property
    def done(self) -> bool:
        return self.level > self.config.rounds

    @property
    def total_epochs(self) -> int:
        return (self.config.rounds + 1) * self.config.epochs

    @property
    def global_epoch(self) -> int:
        """Epochs finished over all levels: the time axis across IMP rounds."""
        return self.level * self.config.epochs + self.epoch

    def sparsity(self) -> float:
        return pruning.sparsity(self.masks["S"])

    # -- training -----------------------------------------------------------------
    def epochs(self) -> Iterator[dict[str, Any]]:
        """Train until the run is complete, yielding one record per finished epoch."""
        while not self.done:
            yield self.train_epoch()

    def train_epoch(self) -> dict[str, Any]:
        epoch = self.begin_epoch()
        with self.accel.autocast():
            self.method.step(epoch.nets, epoch.ctx)
        return self.finish_epoch(epoch)

    def begin_epoch(self) -> "EpochStart":
        """The schedule set and the context of the next epoch, before its training step (a
        fused array, ts3ray/fused/, trains K members' steps at once between the halves)."""
        started = time.perf_counter()
        stage = self.method.stage(self.epoch)
        lr = self._schedule(self.epoch)  # the method's protocol owns the lr
        stats = EpochStats(self.device)
        ctx = self.epoch_context(stats)
        nets = self.nets()
        ctx.reinit = self._reinit(nets)
        if self.epoch == 0:
            reset_peak_memory(self.device)
        return EpochStart(stage, lr, stats, ctx, nets, started)

    def finish_epoch(self, epoch: "EpochStart") -> dict[str, Any]:
        """Evaluate, record the epoch, and at a level's end prune and reset (Algorithm 2)."""
        c, stats = self.config, epoch.stats
        with self.accel.autocast():
            for net, model in self.models.items():
                for eval_set, accuracy in self.data.accuracies(model, top5=net == "S").items():
                    stats.add(f"{eval_set}_acc_{net}", accuracy)
            if self.method.evaluated != ("S",):  # the method's own prediction rule
                for eval_set, accuracy in self.data.accuracies(self.models,
                                                               self.method.evaluated).items():
                    stats.add(f"{eval_set}_acc_eval", accuracy)
        values = stats.read()  # one host transfer for the epoch's statistics
        self.epoch += 1
        record = self._epoch_record(epoch.stage, epoch.lr, values,
                                    time.perf_counter() - epoch.started)
        self.epoch_rows.append(record)
        if self.epoch == c.epochs:
            self._finish_level(record)
        return record

    def _epoch_record(self, stage: str, lr: float, v: dict[str, float], seconds: float):
        def ratio(num: str, den: str) -> float:
            return v[num] / v[den] if v.get(den) else math.nan

        def evaluated(eval_set: str) -> float:  # the method's prediction; S's when it is S
            return v.get(f"{eval_set}_acc_eval", v.get(f"{eval_set}_acc_S", math.nan))

        return {
            "run_id": self.config.run_id,
            "round": self.level,
            "epoch": self.epoch,
            "global_epoch": self.global_epoch,
            "stage": stage,
            "sparsity": self.sparsity(),
            "nonzero_params": pruning.nonzero_params(self.sparse_model),
            "total_params": self.total_params,
            "acc_sparse": v["test_acc_S"],
            "acc_dense": v.get("test_acc_D", math.nan),
            "acc_eval": evaluated("test"),
            # accuracy on the held-out noisy labels (val_fraction > 0): what choices use
            "val_acc_sparse": v.get("val_acc_S", math.nan),
            "val_acc_dense": v.get("val_acc_D", math.nan),
            "val_acc_eval": evaluated("val"),
            "clean_val_acc_sparse": v.get("clean_val_acc_S", math.nan),
            "clean_val_acc_eval": evaluated("clean_val"),
            "loss_sparse": ratio("loss_S", "steps_S"),
            "loss_dense": ratio("loss_D", "steps_D"),
            "label_precision": ratio("selected_correct", "selected"),
            "relabel_count": int(v.get("relabeled", 0)),
            "relabel_accuracy": ratio("relabeled_correct", "relabeled_known"),
            "lr": lr,
            "seconds": seconds,
            # top-5 of S (Table VI; NaN with <= 5 classes) and further named test sets
            "top5_sparse": v.get("test_top5_acc_S", math.nan),
            **{column: v.get(key, math.nan) for column, key in self._extra_test_columns()},
        }

    def _extra_test_columns(self) -> list[tuple[str, str]]:
        """(column, stats key) of the test sets after the primary one (WebVision: ILSVRC12)."""
        out = []
        for name in self.data.test_sets[1:]:
            out += [(f"acc_sparse_{name}", f"{name}_acc_S"),
                    (f"top5_sparse_{name}", f"{name}_top5_acc_S")]
        return out

    def _finish_level(self, last: dict[str, Any]) -> None:
        level = [r for r in self.epoch_rows if r["round"] == self.level]
        self.level_rows.append(
            {
                "run_id": self.config.run_id,
                "round": self.level,
                "sparsity": last["sparsity"],
                "nonzero_params": last["nonzero_params"],
                "total_params": self.total_params,
                "train_samples": self.data.batches.num_samples,
                "data_path_used": self.data.path,  # device | stream (config data_path: auto...)
                "val_samples": (self.data.eval_sets["val"].num_samples
                                if "val" in self.data.eval_sets else 0),
                "acc_sparse_last": last["acc_sparse"],
                "acc_dense_last": last["acc_dense"],
                "acc_eval_last": last["acc_eval"],
                **best_epoch_columns(level, "val_acc_sparse", "val"),
                **best_epoch_columns(level, "clean_val_acc_sparse", "clean_val"),
                **best_epoch_columns(level, "val_acc_dense", "val", tested="acc_dense"),
                **tail_columns(level, ("acc_sparse", "acc_dense", "acc_eval")),
                "val_acc_dense_last": last["val_acc_dense"],
                "val_acc_eval_last": last["val_acc_eval"],
                "gpu_peak_mb": peak_memory_mb(self.device),  # this level's peak allocation
                "top5_sparse_last": last["top5_sparse"],
                **{f"{column}_last": last[column] for column, _ in self._extra_test_columns()},
            }
        )
        if self.tickets is not None:  # the level's ticket: its masks, before the next prune
            self.tickets.level_done(self, self.level, self.level_rows[-1])
        self.level += 1
        self.epoch = 0
        self.method_state = {}  # every level is a full retraining
        if not self.done:
            self._prune_and_reset()

    def _prune_and_reset(self) -> None:
        """Algorithm 2: prune p_f of each pruned network's remaining weights by its own
        magnitudes, then reset every network's surviving weights to their initial values.
        `dense_reset=from_sparse` (the official code) re-creates the dense peer D as a dense
        copy of S's initial weights instead of its own."""
        for name, model in self.models.items():
            if name in self.masks:
                self.masks[name] = pruning.global_magnitude_prune(
                    model, self.masks[name], self.config.prune_fraction
                )
            init = self.init_states[name]
            if name == "D" and self.config.dense_reset == "from_sparse":
                init = self.init_states["S"]
            pruning.reset_to_init(model, init, self.masks.get(name, {}))
        self._new_optimizers()

    # -- checkpointing --------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue; loads with torch.load(weights_only=True)."""
        return {
            "version": STATE_VERSION,
            "run_id": self.config.run_id,
            "config": _plain(self.config.to_dict()),
            "level": self.level,
            "epoch": self.epoch,
            "models": {n: m.state_dict() for n, m in self.models.items()},
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "masks": {n: dict(m) for n, m in self.masks.items()},
            "init_states": self.init_states,
            "method_state": dict(self.method_state),
            "rng": {"torch": torch.get_rng_state()},
            "epoch_rows": [dict(r) for r in self.epoch_rows],
            "level_rows": [dict(r) for r in self.level_rows],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("run_id") != self.config.run_id:
            raise ValueError(
                f"checkpoint belongs to run {state.get('run_id')}, not {self.config.run_id}"
            )
        self.level, self.epoch = int(state["level"]), int(state["epoch"])
        for name, model in self.models.items():
            model.load_state_dict(state["models"][name])
        self.masks = {n: {k: v.to(self.device) for k, v in m.items()} for n, m in state["masks"].items()}
        self.init_states = state["init_states"]
        self.method_state = {k: v.to(self.device) for k, v in state["method_state"].items()}
        self._new_optimizers()
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        torch.set_rng_state(state["rng"]["torch"])
        self.epoch_rows = [dict(r) for r in state["epoch_rows"]]
        self.level_rows = [dict(r) for r in state["level_rows"]]


def best_epoch_columns(level_rows: list[dict[str, Any]], column: str, name: str,
                       tested: str = "acc_sparse") -> dict[str, Any]:
    """The level's `column` at its last epoch and at its best epoch (the first epoch of the
    highest value), and the test accuracy `tested` at that best epoch: the "Best" of a table
    selected on `name` data. NaN (and epoch 0) when the run has no such data. For S:
    `val_acc_sparse_last/_best`, `best_val_epoch`, `acc_sparse_at_best_val`; for D (`tested`
    = acc_dense): `val_acc_dense_best`, `best_val_epoch_dense`, `acc_dense_at_best_val`."""
    values = [r[column] for r in level_rows]
    last = values[-1]
    if math.isnan(last):
        best_at, best, test_at_best = 0, math.nan, math.nan
    else:
        best_index = max(range(len(values)), key=lambda i: (values[i], -i))
        best_at, best = level_rows[best_index]["epoch"], values[best_index]
        test_at_best = level_rows[best_index][tested]
    if tested == "acc_sparse":
        return {f"{column}_last": last, f"{column}_best": best, f"best_{name}_epoch": best_at,
                f"acc_sparse_at_best_{name}": test_at_best}
    net = tested.split("_")[1]
    return {f"{column}_best": best, f"best_{name}_epoch_{net}": best_at,
            f"{tested}_at_best_{name}": test_at_best}


def tail_columns(level_rows: list[dict[str, Any]], columns: tuple[str, ...],
                 tail: int = TAIL_EPOCHS) -> dict[str, Any]:
    """Mean and sample std (ddof 1) of each column over the level's last `tail` epochs (all
    of them in a shorter level): Co-teaching's and JoCoR's reporting rule, chosen by no one.
    `acc_sparse_tail_mean`, `acc_sparse_tail_std`, ... (NaN std for a 1-epoch level)."""
    out = {}
    for column in columns:
        values = [r[column] for r in level_rows[-tail:]]
        mean = sum(values) / len(values)
        std = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
               if len(values) > 1 else math.nan)
        out[f"{column}_tail_mean"], out[f"{column}_tail_std"] = mean, std
    return out


def _clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Config values as types that torch.load(weights_only=True) accepts."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


class _CallableModule(types.ModuleType):
    """`ts3ray.run(config, out=...)` is the Python API's run (api.py); `ts3ray.run` is also
    the name of this module, which importing it binds on the package: calling the module
    calls the API."""

    def __call__(self, *args, **kwargs):
        from ts3ray.api import run

        return run(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

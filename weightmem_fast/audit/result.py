"""What an audit produces (issue 8): per-group, per-model arrays, the noise frontier and the verdicts, with JSON,
CSV, table and on-disk forms.

Vocabulary (the same in the docs, the JSON and the report):

- a **group** is a set of models audited together: ``"training"`` (self excluded by index), each generated set, each
  baseline (``"noise 0.05"``, ``"average 16"``, ...), and ``"frontier"``, the noise sweep (every model carries its
  sigma);
- every model gets its weight-space novelty (``min_l2``: L2 distance to the nearest training model; ``nearest_index``
  / ``nearest_l2``: the k nearest) and two behaviour numbers, named by the task:

  | task | ``similarity`` (to training) | ``quality`` |
  |---|---|---|
  | classifier | ``max_iou``: max error-set IoU over training models, higher = closer | ``accuracy``, higher = better |
  | field | ``min_chamfer``: min Chamfer distance to the training clouds, lower = closer | ``test_chamfer``: min Chamfer distance to the held-out clouds, lower = better |

  ``Behaviour`` says which is which, so code reading a result never special-cases the task.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file

from .._files import write_atomic

ARRAYS_FILE = "arrays.safetensors"
JSON_FILE = "audit.json"
CSV_FILE = "audit.csv"
_FORMAT = "weightmem_fast.audit/1"

Role = Literal["training", "generated", "baseline", "frontier", "reference"]


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """How a task's two behaviour numbers read.

    Attributes:
        kind: "classifier" or "field".
        similarity: the per-model key of similarity to training ("max_iou" or "min_chamfer").
        similarity_index: the key of the training row that attains it.
        quality: the per-model key of quality ("accuracy" or "test_chamfer").
        similarity_label, quality_label: axis labels for figures.
        closer_is_higher: True when a higher similarity value means closer to training (IoU); False for distances.
        better_is_higher: True when a higher quality value is better (accuracy); False for distances.
    """

    kind: Literal["classifier", "field"]
    similarity: str
    similarity_index: str
    quality: str
    similarity_label: str
    quality_label: str
    closer_is_higher: bool
    better_is_higher: bool


CLASSIFIER = Behaviour("classifier", "max_iou", "max_iou_index", "accuracy",
                       "max similarity to training (error-set IoU)", "accuracy", True, True)
FIELD = Behaviour("field", "min_chamfer", "min_chamfer_index", "test_chamfer",
                  "min Chamfer distance to training shapes", "min Chamfer distance to held-out shapes", False, False)
BEHAVIOURS = {b.kind: b for b in (CLASSIFIER, FIELD)}


@dataclasses.dataclass(eq=False)
class GroupAudit:
    """One group's models and their per-model results.

    Attributes:
        name: unique within the audit ("training", "generated", "noise 0.05", "frontier", ...).
        role: "training", "generated", "baseline", "frontier" (the noise sweep) or "reference" (a user-given group
            audited like a generated one, e.g. an autoencoder's reconstructions of the training set).
        weights: float32 [n, D], the models (kept for figures; saved in ``arrays.safetensors``). In a sharded
            audit (``audit(..., sharded=True)``) the training group's are only this rank's rows of the n.
        min_l2: float32 [n], L2 distance to the nearest training model (training: self excluded by index).
        nearest_index: int64 [n, k], the k nearest training rows, nearest first (ties to the lowest index).
        nearest_l2: float32 [n, k], their distances.
        metrics: per-model float or int64 tensors [n] named by the task's ``Behaviour`` (e.g. "accuracy",
            "max_iou", "max_iou_index"); the frontier group also has "sigma".
        extras: other per-model tensors the figures use and the JSON leaves out (field tasks: "clouds"
            [n, P, 3]); saved in ``arrays.safetensors``.
    """

    name: str
    role: Role
    weights: torch.Tensor
    min_l2: torch.Tensor
    nearest_index: torch.Tensor
    nearest_l2: torch.Tensor
    metrics: dict[str, torch.Tensor]
    extras: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return self.min_l2.shape[0]  # not weights: a sharded audit's training group holds only its rank's rows

    def summary(self) -> dict[str, Any]:
        """Count and mean of every per-model number (what the report's group table shows); means skip NaN."""
        out: dict[str, Any] = {"models": len(self), "mean_min_l2": _mean(self.min_l2)}
        for key, values in self.metrics.items():
            if values.is_floating_point() and key != "sigma":
                out[f"mean_{key}"] = _mean(values)
        return out


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A statistic and its bootstrap confidence interval [low, high] (``level``, e.g. 0.95)."""

    value: float
    low: float
    high: float
    level: float

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Frontier:
    """The memorisation frontier traced by noised training models over the sigma sweep
    (``weightmem_fast.audit.verdict`` defines it).

    Attributes:
        sigmas, similarity, quality: the curve, one point per sigma in sweep order: the medians of that sigma's
            models' similarity and quality.
        envelope_similarity, envelope_quality: the corners of the noise envelope, the staircase that no noised
            model rises above (its Pareto front in novelty and quality), most novel first. "Beyond the frontier"
            means above this staircase.
    """

    sigmas: tuple[float, ...]
    similarity: tuple[float, ...]
    quality: tuple[float, ...]
    envelope_similarity: tuple[float, ...] = ()
    envelope_quality: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, list[float]]:
        return {key: list(value) for key, value in dataclasses.asdict(self).items()}


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The memorisation verdict for one generated (or reference) group (definitions: ``weightmem_fast.audit.verdict``).

    Attributes:
        group: the group's name.
        beyond_frontier: fraction of its models beyond the noise frontier.
        near_copies: fraction of near-copies of training models.
        min_l2_ratio: mean min-L2 to training of the group / the same of training models among themselves.
        thresholds: the near-copy thresholds used ("min_l2": the 5th percentile of training->training min L2;
            "similarity": the frontier's similarity at its smallest sigma).
    """

    group: str
    beyond_frontier: Estimate
    near_copies: Estimate
    min_l2_ratio: Estimate
    thresholds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "beyond_frontier": self.beyond_frontier.to_dict(),
                "near_copies": self.near_copies.to_dict(), "min_l2_ratio": self.min_l2_ratio.to_dict(),
                "thresholds": dict(self.thresholds)}


@dataclasses.dataclass(eq=False)
class AuditResult:
    """Everything one ``audit`` call computed.

    Attributes:
        behaviour: how the task's behaviour numbers read (``CLASSIFIER`` or ``FIELD``).
        groups: the groups by name, in audit order (training first).
        frontier: the noise frontier.
        verdicts: one ``Verdict`` per generated, reference and baseline group, by group name.
        per_model: per-model verdict flags by group name: {"beyond_frontier": bool [n], "near_copy": bool [n]}.
        group_metrics: set-level numbers per group (field tasks: MMD, COV, 1-NNA against the held-out shapes).
        settings: the audit's arguments and derived settings (sigmas, seeds, k, ...), JSON-able.
        versions: package versions and the machine, JSON-able.
    """

    behaviour: Behaviour
    groups: dict[str, GroupAudit]
    frontier: Frontier
    verdicts: dict[str, Verdict]
    per_model: dict[str, dict[str, torch.Tensor]]
    group_metrics: dict[str, dict[str, float]]
    settings: dict[str, Any]
    versions: dict[str, Any]

    @property
    def training(self) -> GroupAudit:
        return self.groups["training"]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: settings, versions, verdicts, frontier, group summaries and every per-model number
        (weights and other ``extras`` are left to ``save``'s arrays file)."""
        return {
            "format": _FORMAT,
            "task": self.behaviour.kind,
            "behaviour": dataclasses.asdict(self.behaviour),
            "settings": self.settings,
            "versions": self.versions,
            "verdicts": {name: v.to_dict() for name, v in self.verdicts.items()},
            "frontier": self.frontier.to_dict(),
            "groups": {name: {"role": g.role, **g.summary(), **self.group_metrics.get(name, {})}
                       for name, g in self.groups.items()},
            "models": self.rows(),
        }

    def to_json(self, indent: int | None = 1) -> str:
        """``to_dict()`` as JSON text (NaN and infinities written as null, so any JSON reader accepts it)."""
        return json.dumps(_json_safe(self.to_dict()), indent=indent)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per model, all groups in order: group, role, index in the group, min_l2, nearest_{1..k} and
        nearest_l2_{1..k}, the task's metrics, and the verdict flags where the group has them."""
        out = []
        for name, group in self.groups.items():
            flags = self.per_model.get(name, {})
            columns: dict[str, list] = {"min_l2": group.min_l2.tolist()}
            for j in range(group.nearest_index.shape[1]):
                columns[f"nearest_{j + 1}"] = group.nearest_index[:, j].tolist()
                columns[f"nearest_l2_{j + 1}"] = group.nearest_l2[:, j].tolist()
            columns.update({key: values.tolist() for key, values in group.metrics.items()})
            columns.update({key: values.tolist() for key, values in flags.items()})
            for i in range(len(group)):
                out.append({"group": name, "role": group.role, "index": i, **{k: v[i] for k, v in columns.items()}})
        return out

    def to_csv(self) -> str:
        """``rows()`` as CSV text with a header (the union of all rows' columns; empty where a group lacks one)."""
        rows = self.rows()
        header: dict[str, None] = {}
        for row in rows:
            header.update(dict.fromkeys(row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(header), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    def to_frame(self) -> "Any":
        """``rows()`` as a pandas DataFrame (one row per model).

        Raises:
            ImportError: pandas is not installed (``pip install pandas``); ``to_csv`` needs no pandas.
        """
        try:
            import pandas as pd
        except ImportError as error:
            raise ImportError("AuditResult.to_frame needs pandas (pip install pandas); to_csv() and to_json() "
                              "work without it") from error
        return pd.DataFrame(self.rows())

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``audit.json``, ``audit.csv`` and ``arrays.safetensors`` (weights, per-model arrays and extras of
        every group) into ``directory`` (created if needed). Each file is written to a temporary name and renamed,
        so a crash never leaves a half-written file. ``AuditResult.load`` reads the directory back.

        Returns:
            The directory.
        """
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for name, group in self.groups.items():
            fields = {"weights": group.weights, "min_l2": group.min_l2, "nearest_index": group.nearest_index,
                      "nearest_l2": group.nearest_l2,
                      **{f"metrics.{k}": v for k, v in group.metrics.items()},
                      **{f"extras.{k}": v for k, v in group.extras.items()},
                      **{f"per_model.{k}": v for k, v in self.per_model.get(name, {}).items()}}
            tensors.update({f"{name}/{key}": value.detach().cpu().contiguous() for key, value in fields.items()})
        write_atomic(root / ARRAYS_FILE, lambda tmp: save_file(tensors, str(tmp)))
        write_atomic(root / JSON_FILE, lambda tmp: tmp.write_text(self.to_json() + "\n", encoding="utf-8"))
        write_atomic(root / CSV_FILE, lambda tmp: tmp.write_text(self.to_csv(), encoding="utf-8"))
        return root

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "AuditResult":
        """Read a directory written by ``save``.

        Raises:
            FileNotFoundError: a file is missing (the message names it).
            ValueError: the files are not an audit of this format.
        """
        root = Path(directory)
        for file in (JSON_FILE, ARRAYS_FILE):
            if not (root / file).is_file():
                raise FileNotFoundError(f"{root / file}: missing; is {root} a directory written by "
                                        "AuditResult.save?")
        doc = json.loads((root / JSON_FILE).read_text(encoding="utf-8"))
        if doc.get("format") != _FORMAT:
            raise ValueError(f"{root / JSON_FILE}: format {doc.get('format')!r}, expected {_FORMAT!r}")
        arrays = load_file(str(root / ARRAYS_FILE))
        groups, per_model = {}, {}
        # safetensors sorts its keys; the JSON rows keep the columns' original order.
        columns = {}
        for row in doc["models"]:
            columns.setdefault(row["group"], list(row))
        for name, info in doc["groups"].items():
            def part(prefix: str) -> dict[str, torch.Tensor]:
                start = f"{name}/{prefix}."
                found = {key[len(start):]: value for key, value in arrays.items() if key.startswith(start)}
                order = columns.get(name, [])
                return dict(sorted(found.items(), key=lambda item: order.index(item[0]) if item[0] in order else -1))

            groups[name] = GroupAudit(name, info["role"], arrays[f"{name}/weights"], arrays[f"{name}/min_l2"],
                                      arrays[f"{name}/nearest_index"], arrays[f"{name}/nearest_l2"], part("metrics"),
                                      part("extras"))
            if flags := part("per_model"):
                per_model[name] = flags
        group_keys = {"role", "models"} | {key for g in groups.values() for key in g.summary()}
        return cls(
            behaviour=Behaviour(**doc["behaviour"]),
            groups=groups,
            frontier=Frontier(**{key: tuple(_number(x) for x in values)
                                 for key, values in doc["frontier"].items()}),
            verdicts={name: Verdict(v["group"], *(Estimate(**_numbers(v[key]))
                                                  for key in ("beyond_frontier", "near_copies", "min_l2_ratio")),
                                    _numbers(v["thresholds"])) for name, v in doc["verdicts"].items()},
            per_model=per_model,
            group_metrics={name: {k: _number(v) for k, v in info.items() if k not in group_keys}
                           for name, info in doc["groups"].items()},
            settings=doc["settings"],
            versions=doc["versions"],
        )

    def report(self, directory: str | os.PathLike, **options: Any) -> Path:
        """Write the HTML report (and ``save``'s files) into ``directory``; returns the HTML file's path. Options
        go to ``weightmem_fast.report.write_report``."""
        from ..report import write_report

        return write_report({"audit": self}, directory, **options)


def _mean(values: torch.Tensor) -> float:
    """The mean over the models that have a value (NaN marks none: a broken model, a field without a surface)."""
    values = values.double()
    values = values[~values.isnan()]
    return float(values.mean()) if values.numel() else math.nan


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _number(value: Any) -> Any:
    return math.nan if value is None else value


def _numbers(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: _number(v) for k, v in mapping.items()}

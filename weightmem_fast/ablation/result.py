"""What an ablation produces (issue 11): one ``Cell`` per (level, seed), the training reference of every training
set, and the study's table (``rows``: one row per level, mean and std over seeds), with JSON, CSV and on-disk forms.

Columns, named the same in the JSON, the CSV and the report (arrows: the better direction):

| column | classifier methods | field methods |
|---|---|---|
| ``quality`` | mean accuracy of the samples (up) | MMD of the samples' surfaces to held-out shapes (down) |
| ``coverage`` | - | COV of the held-out shapes (up) |
| ``mean_min_l2`` | mean L2 distance from each sample to its nearest training model (up = more novel) | same |
| ``beyond_frontier`` | share of samples beyond the noise frontier (up) | same |
| ``near_copies`` | share of near-copies of training models (down) | same |
| ``fit_seconds`` | the generator's training time | same |
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from .._files import write_atomic

JSON_FILE = "ablation.json"
CSV_FILE = "ablation.csv"
_FORMAT = "weightmem_fast.ablation/1"
# (column, header, better direction: 1 higher, -1 lower, 0 none); "quality" takes its direction from the result.
COLUMNS = (("quality", None, None), ("coverage", "COV", 1), ("mean_min_l2", "mean min L2", 1),
           ("beyond_frontier", "beyond frontier", 1), ("near_copies", "near-copies", -1),
           ("fit_seconds", "fit s", 0))


@dataclasses.dataclass(frozen=True)
class Cell:
    """One retrained generator: a level of a factor and a seed (of the fit and of the sampling).

    Attributes:
        factor, level: the table row ("default" for the unchanged config).
        seed: the config seed and the sampling seed.
        quality, coverage, mean_min_l2, beyond_frontier, near_copies, fit_seconds: the columns (module docstring);
            coverage is NaN for classifier methods.
        parameters: the generator's parameter count.
        training_models: the size of the training set it was trained on and audited against.
    """

    factor: str
    level: str
    seed: int
    quality: float
    coverage: float
    mean_min_l2: float
    beyond_frontier: float
    near_copies: float
    fit_seconds: float
    parameters: int
    training_models: int


@dataclasses.dataclass(frozen=True)
class TrainingRow:
    """The reference row of one training set: its models audited among themselves (self excluded).

    Attributes:
        level: the level whose training set it is ("default" for the whole zoo, "data 25 %", ...).
        models: training models.
        quality: their mean accuracy, or the MMD of their surfaces (field methods).
        coverage: the COV of their surfaces (NaN for classifiers).
        mean_min_l2: training -> training mean min L2 (the study's "training" row).
    """

    level: str
    models: int
    quality: float
    coverage: float
    mean_min_l2: float


@dataclasses.dataclass(eq=False)
class AblationResult:
    """Everything one ``ablate`` call computed.

    Attributes:
        method: "hr", "gpt", "hd" or "pdiff".
        quality_name: "accuracy" or "MMD"; ``better_is_higher`` says its direction.
        cells: every (level, seed), in plan order.
        training: the reference rows by level: "default" (the "training" row of the table) and each data level,
            from the level's first cell (HR's training group is its own generator's reconstructions, so HR's rows
            are those of the first seed's fit).
        notes: levels left out and other remarks.
        settings: the call's arguments and the base config, JSON-able.
        versions: package versions and the machine.
    """

    method: str
    quality_name: str
    better_is_higher: bool
    cells: list[Cell]
    training: dict[str, TrainingRow]
    notes: list[str]
    settings: dict[str, Any]
    versions: dict[str, Any]

    def levels(self) -> list[tuple[str, str]]:
        """(factor, level) of every row, in plan order (the default first)."""
        return list(dict.fromkeys((cell.factor, cell.level) for cell in self.cells))

    def rows(self) -> list[dict[str, Any]]:
        """The study's table: the "training" row, then one row per level with each column's mean and std over
        seeds (``<column>`` and ``<column>_std``), the seed count and the parameter count."""
        default = self.training["default"]
        out = [{"factor": "training", "level": "training", "seeds": 0, "parameters": None,
                "training_models": default.models, "quality": default.quality, "coverage": default.coverage,
                "mean_min_l2": default.mean_min_l2}]
        for factor, level in self.levels():
            cells = [cell for cell in self.cells if cell.level == level]
            row: dict[str, Any] = {"factor": factor, "level": level, "seeds": len(cells),
                                   "parameters": cells[0].parameters, "training_models": cells[0].training_models}
            for column, _, _ in COLUMNS:
                values = torch.tensor([getattr(cell, column) for cell in cells], dtype=torch.float64)
                row[column] = _nanmean(values)
                row[f"{column}_std"] = float(values.std()) if len(cells) > 1 else math.nan
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: method, settings, versions, notes, training rows, every cell and the table rows."""
        return {"format": _FORMAT, "method": self.method, "quality_name": self.quality_name,
                "better_is_higher": self.better_is_higher, "settings": self.settings, "versions": self.versions,
                "notes": list(self.notes), "training": {k: dataclasses.asdict(v) for k, v in self.training.items()},
                "cells": [dataclasses.asdict(cell) for cell in self.cells], "rows": self.rows()}

    def to_json(self, indent: int | None = 2) -> str:
        """``to_dict`` as JSON (NaN written as null)."""
        return json.dumps(_nulls(self.to_dict()), indent=indent)

    def to_csv(self) -> str:
        """The table rows as CSV (empty cells for NaN)."""
        rows = self.rows()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[-1]), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None or (isinstance(v, float) and math.isnan(v)) else v
                             for k, v in row.items()})
        return buffer.getvalue()

    def save(self, directory: str | os.PathLike) -> Path:
        """Writes ``ablation.json`` and ``ablation.csv`` into ``directory`` (created), atomically; returns it."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        for name, text in ((JSON_FILE, self.to_json()), (CSV_FILE, self.to_csv())):
            write_atomic(root / name, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
        return root

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "AblationResult":
        """Reads what ``save`` wrote.

        Raises:
            FileNotFoundError: no ``ablation.json`` in ``directory``.
            ValueError: the file is not an ablation result of this format.
        """
        data = json.loads((Path(directory) / JSON_FILE).read_text(encoding="utf-8"))
        if data.get("format") != _FORMAT:
            raise ValueError(f"{Path(directory) / JSON_FILE} is not a {_FORMAT} file (format {data.get('format')!r})")
        floats = lambda row: {k: math.nan if v is None else v for k, v in row.items()}  # noqa: E731
        return cls(data["method"], data["quality_name"], data["better_is_higher"],
                   [Cell(**floats(cell)) for cell in data["cells"]],
                   {k: TrainingRow(**floats(v)) for k, v in data["training"].items()}, data["notes"],
                   data["settings"], data["versions"])


def _nanmean(values: torch.Tensor) -> float:
    finite = values[~values.isnan()]
    return float(finite.mean()) if len(finite) else math.nan


def _nulls(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nulls(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nulls(v) for v in value]
    return value

"""The metric registry: every use of a metric (``evaluate``, validation, the sweep, the web page, the benches)
picks its class here by name. A metric is a class with ``name``, ``Counts`` (mergeable per-image counts with
``metrics()``; the empty ``Counts()`` is the zero), ``update``/``update_images``/``compute``/``reset`` and
``image_figures``. Adding one is a new module and one line below.

Entries are ``module:class`` and imported on first use: ``ocrdet evaluate`` loads only the metric it runs
(CLEval's module loads shapely)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ocrdet.eval.cleval import CLEval
    from ocrdet.eval.iou_hmean import IoUHmean

METRICS = {"hmean": "ocrdet.eval.iou_hmean:IoUHmean", "cleval": "ocrdet.eval.cleval:CLEval"}


def metric_class(name: str) -> type[IoUHmean] | type[CLEval]:
    """The class registered as ``name``; a ValueError naming the choices for anything else."""
    try:
        module, cls = METRICS[name].split(":")
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}") from None
    return getattr(importlib.import_module(module), cls)

"""The metric registry: every use of a metric (``evaluate``, validation, the sweep, the web page, the benches)
picks its class here by name. A metric is a class with ``name``, ``Counts`` (mergeable per-image counts with
``metrics()``; the empty ``Counts()`` is the zero), ``update``/``update_images``/``compute``/``reset`` and
``image_figures``. Adding one is a new module and one line below."""

from __future__ import annotations

from ocrdet.eval.cleval import CLEval
from ocrdet.eval.iou_hmean import IoUHmean

METRICS = {cls.name: cls for cls in (IoUHmean, CLEval)}


def metric_class(name: str) -> type[IoUHmean] | type[CLEval]:
    """The class registered as ``name``; a ValueError naming the choices for anything else."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}") from None

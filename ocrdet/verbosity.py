"""Quiet by default: a normal run shows ocrdet's own lines, its results and progress bars, not the libraries'
chatter (Lightning's hardware lines, tips, ``limit_*_batches`` notes and model summary; deprecation notes;
Lightning's "possible user" hints). ``ocrdet -v`` (or ``ocrdet COMMAND -v``) shows all of it."""

from __future__ import annotations

import logging
import warnings

CHATTY_LOGGERS = ("lightning.pytorch", "lightning.fabric")
QUIET_WARNINGS = (DeprecationWarning, FutureWarning, PendingDeprecationWarning)
_quiet = False


def quiet() -> None:
    """Hide info-level logs of the chatty libraries and the warnings that ask nothing of the user."""
    global _quiet
    _quiet = True
    for category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", category=category)
    # Lightning's hints (PossibleUserWarning and plain UserWarnings, e.g. "fewer batches than the logging
    # interval"), matched by the module that issues them: importing Lightning here would cost seconds per command
    warnings.filterwarnings("ignore", category=UserWarning, module=r"lightning\.")
    settle()


def settle() -> None:
    """Apply the log levels again: importing Lightning sets its loggers to INFO. Call after that import."""
    if _quiet:
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)

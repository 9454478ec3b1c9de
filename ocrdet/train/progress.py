"""Lightning's progress bars on stderr (Lightning writes them to stdout): a redirected stdout holds results only."""

from __future__ import annotations

import contextlib
import sys

from lightning.pytorch.callbacks import TQDMProgressBar


class StderrProgressBar(TQDMProgressBar):
    """``TQDMProgressBar`` whose bars write to stderr (Lightning passes ``file=sys.stdout`` when it makes a bar)."""

    def init_sanity_tqdm(self):
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_sanity_tqdm()

    def init_train_tqdm(self):
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_train_tqdm()

    def init_validation_tqdm(self):
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_validation_tqdm()

    def init_predict_tqdm(self):
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_predict_tqdm()

    def init_test_tqdm(self):
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_test_tqdm()

"""Per-interval validation scores that need generated images (study Fig. 7: KID on a validation set per epoch).

Generic: works for any model through a ``translate(labels)`` callable (label maps in [-1, 1] -> photos in
[-1, 1]). A train script adds it through ``ModelSpec.callbacks`` (see ``kid_callbacks`` and ``fid_callbacks``),
which runs it before the CSV logger, so ``val_kid`` / ``val_fid`` becomes a column of ``log.csv``: the score on
the intervals where it is computed, NaN on the others, so the CSV keeps the same columns from the first row on.

Config keys read by ``kid_callbacks``: ``kid_every`` (steps between KID scores, a multiple of ``log_every``;
0 = off), ``kid_images`` (validation images used; 0 = all), ``kid_backbone`` (``alexnet`` by default: it works
offline, but its values are not comparable with published KID; ``inception`` / ``fid-inception`` when their
weights are installed). ``fid_callbacks`` reads the same keys named ``fid_*``.
"""

import math

import keras
import numpy as np

from data.errors import I2IError

KID_KEY = "val_kid"
FID_KEY = "val_fid"


class ValidationKID(keras.callbacks.Callback):
    """Every ``every_epochs`` epochs (and at the last one) adds ``val_kid`` = KID(translations, photos) to the logs
    (``metric="fid"``: ``val_fid`` = FID, eq. 32).

    The backbone and the reference features of ``photos`` are computed once, when training begins; without the
    backbone's weights (offline, not installed) a note is printed and the column stays NaN, the run goes on.
    KID is the mean over ``subsets`` subsets of ``subset_size`` images (shrunk to the number of images, as
    ``metrics`` does).
    """

    def __init__(self, translate, labels, photos, every_epochs, total_epochs=None, backbone="alexnet",
                 batch_size=32, subsets=100, subset_size=1000, key=None, metric="kid"):
        super().__init__()
        if metric not in ("kid", "fid"):
            raise ValueError(f"unknown validation metric {metric!r}")
        if len(labels) < 2:
            raise I2IError(f"validation {metric.upper()} needs at least 2 validation images, got {len(labels)}")
        self.metric = metric
        key = key or (KID_KEY if metric == "kid" else FID_KEY)
        self.translate, self.labels, self.photos = translate, np.asarray(labels), np.asarray(photos)
        self.every, self.total = max(1, int(every_epochs)), total_epochs
        self.backbone_name, self.batch_size = backbone, int(batch_size)
        self.subsets, self.subset_size, self.key = subsets, subset_size, key
        self._backbone = self._real_features = None
        self.unavailable = None  # the reason KID cannot be computed (missing backbone weights), if so

    def on_train_begin(self, logs=None):
        """Build the backbone before training, so missing weights are reported at once and not after an interval."""
        from metrics.backbones import extract_features, get_backbone
        from metrics.weights import WeightsError

        if self._backbone is not None or self.unavailable:
            return
        try:
            self._backbone = get_backbone(self.backbone_name, batch_size=self.batch_size)
        except WeightsError as e:
            self.unavailable = str(e).splitlines()[0]
            print(f"note: validation {self.metric.upper()} off ({self.key} stays NaN): {self.unavailable}", flush=True)
            return
        self._real_features = extract_features(self._backbone, self._batches(self.photos))

    def due(self, epoch):
        return (epoch + 1) % self.every == 0 or epoch + 1 == self.total

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs[self.key] = self.score() if self.due(epoch) and not self.unavailable else math.nan

    def score(self):
        """KID mean (or FID) between translations of the validation label maps and their photos."""
        from data.pipeline import to_uint8
        from metrics.backbones import extract_features
        from metrics.distances import fid_from_features, kid_from_features

        if self._backbone is None:
            self.on_train_begin()
        if self.unavailable:
            return math.nan
        fakes = (to_uint8(self.translate(labels)) for labels in self._batches(self.labels, to_model=True))
        fake_features = extract_features(self._backbone, fakes)
        if self.metric == "fid":
            return fid_from_features(fake_features, self._real_features)
        kid = kid_from_features(fake_features, self._real_features, subsets=self.subsets,
                                subset_size=self.subset_size)
        return kid["kid_mean"]

    def _batches(self, images, to_model=False):
        for i in range(0, len(images), self.batch_size):
            batch = images[i:i + self.batch_size]
            yield batch.astype(np.float32) / 127.5 - 1.0 if to_model else batch


def kid_callbacks(config, val_pairs, translate, metric="kid"):
    """``[ValidationKID]`` from the config's ``kid_*`` keys (``fid_*`` for ``metric="fid"``; empty when
    ``kid_every`` / ``fid_every`` is 0)."""
    every, log_every = config[f"{metric}_every"], config["log_every"]
    if not every:
        return []
    if every % log_every:
        raise I2IError(f"--{metric}-every {every} must be a multiple of --log-every {log_every}")
    n = config[f"{metric}_images"] or len(val_pairs)
    return [ValidationKID(translate, val_pairs.labels[:n], val_pairs.photos[:n], every // log_every,
                          total_epochs=config["steps"] // log_every, backbone=config[f"{metric}_backbone"],
                          metric=metric)]


def fid_callbacks(config, val_pairs, translate):
    """``[ValidationKID(metric="fid")]`` from the config's ``fid_*`` keys (empty when ``fid_every`` is 0)."""
    return kid_callbacks(config, val_pairs, translate, metric="fid")

"""Does the photo follow the label map? Segmentation scores of generated photos (mIoU and pixel accuracy).

The third standard metric of semantic image synthesis beside FID and LPIPS (pix2pix's "FCN-score", Isola et al.
2017; SPADE, Park et al. 2019; OASIS, Schönfeld et al. 2021): a pretrained segmenter parses each generated photo,
and its class map is compared with the label map the photo was generated from. Here the segmenter is the facade
parser (:mod:`metrics.facade_parser`), and the comparison is made on its grid (128 px): generated photos are
resized to it by the parser, label maps are converted to class indices at their own size
(:func:`data.label_classes.label_map_to_classes`, JPEG seams ignored) and resampled to it at the pixel centres.

Scores, as SPADE's evaluation computes them, from one confusion matrix summed over all pixels of all images:

* ``seg_miou``: the mean over classes of IoU = TP / (TP + FP + FN). A class that is in no label map and never
  predicted (TP + FP + FN = 0) has no IoU (``None`` in ``per_class_iou``) and is left out of the mean; a class
  predicted but in no label map has IoU 0 and counts.
* ``seg_acc``: pixel accuracy, correctly classified pixels / scored pixels.
* ``per_class_iou``: ``{class name: IoU or None}``, in CMP order.
* ``per_image``: ``{"seg_miou": [...], "seg_acc": [...]}``, the same two scores from each image's own matrix
  (``nan`` for an image whose label map has no scored pixel).

Pixels whose label is :data:`data.label_classes.IGNORE` are not scored.
"""

import numpy as np

from data.errors import I2IError
from data.label_classes import IGNORE, NUM_CLASSES, label_map_to_classes, resize_classes
from data.synthetic import CLASS_NAMES


def confusion_matrix(true, predicted, classes=NUM_CLASSES):
    """(classes, classes) int64 counts, rows = true class, columns = predicted; pixels labelled IGNORE skipped."""
    true, predicted = np.asarray(true).ravel(), np.asarray(predicted).ravel()
    if true.shape != predicted.shape:
        raise I2IError(f"segmentation: {true.size} label pixels but {predicted.size} predicted pixels")
    scored = true != IGNORE
    true, predicted = true[scored].astype(np.int64), predicted[scored].astype(np.int64)
    if true.size and (true.max() >= classes or predicted.max() >= classes):
        raise I2IError(f"segmentation: class indices must be below {classes} (or {IGNORE} = ignored)")
    return np.bincount(true * classes + predicted, minlength=classes * classes).reshape(classes, classes)


def class_iou(matrix):
    """IoU per class from a confusion matrix; NaN where the class is neither in the labels nor predicted."""
    matrix = np.asarray(matrix, np.float64)
    tp = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(matrix):
    """Mean of :func:`class_iou` over the classes that have one (NaN if none has)."""
    iou = class_iou(matrix)
    return float(np.mean(iou[~np.isnan(iou)])) if np.any(~np.isnan(iou)) else float("nan")


def pixel_accuracy(matrix):
    """Correct pixels / scored pixels (NaN if no pixel is scored)."""
    matrix = np.asarray(matrix)
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else float("nan")


def scores_from_confusion(matrix, per_image_matrices=()):
    """The result dictionary (see the module docstring) of a total matrix and the images' own matrices."""
    return {
        "seg_miou": mean_iou(matrix),
        "seg_acc": pixel_accuracy(matrix),
        "per_class_iou": {name: (None if np.isnan(v) else float(v)) for name, v in zip(CLASS_NAMES, class_iou(matrix))},
        "per_image": {"seg_miou": [mean_iou(m) for m in per_image_matrices],
                      "seg_acc": [pixel_accuracy(m) for m in per_image_matrices]},
        "n_images": len(per_image_matrices),
        "n_pixels": int(np.asarray(matrix).sum()),
    }


LABEL_MAP_SIZE = 256  # the facades' own size: outputs are scored against label maps of this size (or theirs)


def label_map_size(image_size):
    """The size of the label maps that ``image_size`` px outputs are scored against: the facades' own 256 px, or the
    outputs' size if larger (a label map downsampled to a small run's size blurs the class borders it is scored on)."""
    return max(LABEL_MAP_SIZE, image_size)


def label_classes_at(label_maps, size):
    """RGB label maps (N, H, W, 3) -> class maps (N, size, size), seams ignored, resampled at pixel centres."""
    label_maps = np.asarray(label_maps)
    if label_maps.ndim != 4 or label_maps.shape[-1] != 3:
        raise I2IError(f"segmentation: expected RGB label maps of shape (N, H, W, 3), got {label_maps.shape}")
    return resize_classes(label_map_to_classes(label_maps), size)


class SegmentationScore:
    """Accumulates the segmentation scores of generated photos against their label maps, batch by batch.

    ``parser`` has ``image_size`` and ``classes(photos) -> (N, image_size, image_size)`` class indices
    (:class:`metrics.facade_parser.FacadeParser`). ``update(generated, label_maps)`` takes uint8 RGB batches
    (N, H, W, 3) of the same length, the photos and label maps at any sizes; ``result()`` returns the dictionary
    of the module docstring over everything seen so far.
    """

    def __init__(self, parser):
        self.parser = parser
        self.matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
        self.image_matrices = []

    def update(self, generated, label_maps):
        generated, label_maps = np.asarray(generated), np.asarray(label_maps)
        if len(generated) != len(label_maps):
            raise I2IError(f"segmentation: {len(generated)} generated images but {len(label_maps)} label maps")
        if not len(generated):
            return
        predicted = self.parser.classes(generated)
        true = label_classes_at(label_maps, self.parser.image_size)
        for t, p in zip(true, predicted):
            matrix = confusion_matrix(t, p)
            self.image_matrices.append(matrix)
            self.matrix += matrix

    def result(self):
        if not self.image_matrices:
            raise I2IError("segmentation: no images were scored")
        return scores_from_confusion(self.matrix, self.image_matrices)


def segmentation_scores(generated, label_maps, parser, batch_size=32):
    """The segmentation scores of all ``generated`` photos against ``label_maps`` (uint8 RGB NHWC), in one call."""
    score = SegmentationScore(parser)
    for i in range(0, len(generated), batch_size):
        score.update(generated[i:i + batch_size], label_maps[i:i + batch_size])
    return score.result()

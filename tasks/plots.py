"""Pictures people would rather look at, as PNG files: training curves and confusion matrices of every run, and
the tutorial's looks at the data, the backbone and its features (kernels/tutorial.ipynb shows the files)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay

from tasks.errors import ConfigError
from tasks.files import atomic_write_bytes


def _figure(rows: int = 1, columns: int = 1, figsize: tuple[float, float] = (6, 4), squeeze: bool = True):
    """A figure and its axes, without pyplot: files only, no screen, no global backend to switch (a notebook's own
    inline plots keep working), safe in any thread."""
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(rows, columns, squeeze=squeeze)


def _save(figure: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


def plot_training_curves(histories: list[dict], title: str, path: Path) -> Path:
    """Loss and accuracy per epoch, train and validation, one line per fold."""
    figure, axes = _figure(1, 2, figsize=(10, 4))
    for fold, history in enumerate(histories):
        for axis, metric in zip(axes, ("loss", "accuracy")):
            for prefix, style in (("", "-"), ("val_", "--")):
                if f"{prefix}{metric}" in history:
                    axis.plot(history[f"{prefix}{metric}"], style, color=f"C{fold}",
                              label=f"fold {fold} {'valid' if prefix else 'train'}")
    for axis, metric in zip(axes, ("loss", "accuracy")):
        axis.set(xlabel="epoch", ylabel=metric, title=metric)
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncols=2)
    figure.suptitle(title)  # once, above both: a member's name can be long (mlp@file:...)
    return _save(figure, path)


def plot_confusion_matrix(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str], title: str,
                          path: Path) -> Path:
    """Out-of-fold confusion matrix, rows normalised to the true class."""
    size = max(5, 0.5 * len(class_names))
    figure, axis = _figure(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        labels, probabilities.argmax(axis=1), labels=list(range(len(class_names))), display_labels=class_names,
        normalize="true", values_format=".2f", ax=axis, colorbar=False, xticks_rotation=45)
    axis.set_title(title)
    return _save(figure, path)


def _show_image(axis, image: np.ndarray) -> None:
    """An image (H, W, 1 or 3) in 0..255 without axes; grey ones in grey."""
    grey = image.shape[-1] == 1
    axis.imshow(np.asarray(image[..., 0] if grey else image, dtype=np.uint8), cmap="gray" if grey else None,
                vmin=0, vmax=255)
    axis.set_axis_off()


def _check_rows(images: np.ndarray, labels: np.ndarray) -> None:
    if len(images) != len(labels):
        raise ConfigError(f"{len(images)} rows of images or features but {len(labels)} labels; expected one each")


def plot_class_samples(images: np.ndarray, labels: np.ndarray, class_names: list[str], path: Path,
                       per_class: int = 8, seed: int = 0) -> Path:
    """A grid of `per_class` random images of each class, one class per row."""
    _check_rows(images, labels)
    rng = np.random.default_rng(seed)
    figure, axes = _figure(len(class_names), per_class, squeeze=False,
                                figsize=(0.8 * per_class + 1, 0.8 * len(class_names)))
    for row, name in enumerate(class_names):
        members = np.flatnonzero(labels == row)
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False)
        for column, axis in enumerate(axes[row]):
            axis.set_axis_off()
            if column < len(chosen):
                _show_image(axis, images[chosen[column]])
        axes[row, 0].text(-0.15, 0.5, name, transform=axes[row, 0].transAxes, ha="right", va="center")
    return _save(figure, path)


def plot_class_histogram(labels: np.ndarray, class_names: list[str], path: Path) -> Path:
    """Training images per class: a skewed histogram makes accuracy flatter the majority class."""
    counts = np.bincount(labels, minlength=len(class_names))
    figure, axis = _figure(figsize=(max(5, 0.6 * len(class_names)), 3))
    axis.bar(range(len(class_names)), counts, color="C0")
    axis.set_xticks(range(len(class_names)), class_names, rotation=45 if len(class_names) > 10 else 0)
    axis.set(ylabel="training images", title=f"{len(labels)} training images, {len(class_names)} classes")
    axis.axhline(counts.mean(), color="C1", linestyle="--", label="mean")
    axis.legend()
    return _save(figure, path)


def plot_filters(kernel: np.ndarray, title: str, path: Path, max_filters: int = 32) -> Path:
    """A convolution's filters as little images (height, width, input channels, filters): in colour when they read
    RGB, each stretched to its own range."""
    if kernel.ndim != 4:
        raise ConfigError(f"expected a Conv2D kernel (height, width, input channels, filters), got shape {kernel.shape}")
    filters = min(kernel.shape[-1], max_filters)
    columns = min(8, filters)
    rows = -(-filters // columns)
    figure, axes = _figure(rows, columns, figsize=(1.1 * columns, 1.1 * rows + 0.4), squeeze=False)
    for number, axis in enumerate(axes.flat):
        axis.set_axis_off()
        if number < filters:
            weights = kernel[..., number] if kernel.shape[2] == 3 else kernel[..., number].mean(axis=2, keepdims=True)
            low, high = weights.min(), weights.max()
            _show_image(axis, 255 * (weights - low) / (high - low if high > low else 1.0))
    figure.suptitle(title)
    return _save(figure, path)


def plot_feature_maps(image: np.ndarray, maps: list[tuple[str, np.ndarray]], path: Path, channels: int = 8) -> Path:
    """The image, then the first `channels` channels of each layer's output for it, one layer per row."""
    figure, axes = _figure(len(maps), channels + 1, figsize=(1.2 * (channels + 1), 1.35 * len(maps)),
                                squeeze=False)
    for row, (name, activations) in enumerate(maps):
        for axis in axes[row]:
            axis.set_axis_off()
        if row == 0:
            _show_image(axes[0, 0], image)
            axes[0, 0].set_title("input", fontsize=8)
        for channel in range(min(channels, activations.shape[-1])):
            axes[row, channel + 1].imshow(activations[..., channel], cmap="viridis")
        height, width, depth = activations.shape
        axes[row, 1].set_title(f"{name}: {height}x{width}, {depth} channels", fontsize=8, loc="left")
    return _save(figure, path)


def plot_feature_projections(features: np.ndarray, labels: np.ndarray, class_names: list[str], path: Path,
                             tsne_sample: int = 1000, seed: int = 0) -> Path:
    """The features in 2-D, coloured by class: PCA of every row (linear: what a linear head can separate) and
    t-SNE of a random sample (non-linear neighbourhoods; slow, hence the sample)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    _check_rows(features, labels)
    if tsne_sample < 5:
        raise ConfigError(f"tsne_sample must be at least 5, got {tsne_sample}")
    sample = np.sort(np.random.default_rng(seed).permutation(len(features))[:tsne_sample])
    reduced = features[sample]
    if reduced.shape[1] > 50:  # t-SNE on 50 principal components: the usual speed-up, the same picture
        reduced = PCA(min(50, len(sample)), random_state=seed).fit_transform(reduced)
    tsne = TSNE(2, perplexity=min(30.0, (len(sample) - 1) / 3), init="pca", random_state=seed)
    projections = {"PCA, every image": (PCA(2, random_state=seed).fit_transform(features), labels),
                   f"t-SNE, {len(sample)} images": (tsne.fit_transform(reduced), labels[sample])}
    figure, axes = _figure(1, 2, figsize=(11, 4.8))
    for axis, (title, (points, classes)) in zip(axes, projections.items()):
        for number, name in enumerate(class_names):
            chosen = classes == number
            axis.scatter(points[chosen, 0], points[chosen, 1], s=6, color=matplotlib.colormaps["tab10"](number % 10), label=name)
        axis.set(title=title, xticks=[], yticks=[])
    axes[1].legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1, 0.5))
    return _save(figure, path)


def plot_augmentations(images: np.ndarray, augmented: np.ndarray, path: Path) -> Path:
    """Each image (a row), then its augmented copies (`augmented`: copies x images x H x W x C)."""
    if augmented.shape[1:] != images.shape:
        raise ConfigError(f"augmented copies have shape {augmented.shape[1:]}, the images {images.shape}")
    copies = len(augmented)
    figure, axes = _figure(len(images), copies + 1, figsize=(1.2 * (copies + 1), 1.2 * len(images)),
                                squeeze=False)
    for row, image in enumerate(images):
        _show_image(axes[row, 0], image)
        for copy in range(copies):
            _show_image(axes[row, copy + 1], augmented[copy, row])
    axes[0, 0].set_title("original", fontsize=8)
    for copy in range(copies):
        axes[0, copy + 1].set_title(f"draw {copy + 1}", fontsize=8)
    return _save(figure, path)

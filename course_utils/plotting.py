"""Every figure the course draws: one style, network diagrams, digits, learning curves.

Notebooks call :func:`use_course_style` once, then the helpers below. All colours come from the
Okabe–Ito palette (distinguishable with the common forms of colour blindness) and heat maps use
``cividis``; where a distinction matters, it is also drawn with a shape, hatch or line style, never
with colour alone.

The helpers never pick a matplotlib backend: notebooks use the inline one, scripts whatever is set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Rectangle

#: The Okabe–Ito colours (Okabe & Ito, 2008), in the order the course cycles through them for lines:
#: blue, orange, bluish green, vermillion, reddish purple, sky blue, yellow, black.
OKABE_ITO: list[str] = [
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
]

#: Colour map for heat maps (weights, confusion matrices): perceptually uniform and colour-blind safe.
HEATMAP_CMAP = "cividis"

#: The rcParams that :func:`use_course_style` sets.
COURSE_RC: dict[str, object] = {
    "axes.prop_cycle": cycler(color=OKABE_ITO),
    "image.cmap": HEATMAP_CMAP,
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 2.0,
}


def use_course_style() -> None:
    """Set matplotlib's rcParams to the course style (Okabe–Ito line colours, ``cividis`` images).

    Calling it again changes nothing: it only assigns the values in :data:`COURSE_RC`.
    """
    mpl.rcParams.update(COURSE_RC)


# --------------------------------------------------------------------------------------------------
# Network diagrams (chapter 1)
# --------------------------------------------------------------------------------------------------

_LAYER_FILL = {"in": OKABE_ITO[5], "h": OKABE_ITO[1], "out": OKABE_ITO[2]}
_BIAS_FILL = "#DDDDDD"
_EDGE_COLOR = "#999999"


def _layer_tags(n_layers: int) -> list[str]:
    """Superscripts of the layers: ``in``, ``h`` (or ``h_1``, ``h_2``, …) and ``out``."""
    n_hidden = n_layers - 2
    hidden = ["h"] if n_hidden == 1 else [f"h_{i}" for i in range(1, n_hidden + 1)]
    return ["in", *hidden, "out"]


def _layer_names(n_layers: int) -> list[str]:
    n_hidden = n_layers - 2
    hidden = ["hidden layer"] if n_hidden == 1 else [f"hidden layer {i}" for i in range(1, n_hidden + 1)]
    return ["input layer", *hidden, "output layer"]


def _shown_units(size: int, max_units: int) -> tuple[list[int], bool]:
    """The 1-based unit indices drawn for a layer of ``size`` units, and whether some are elided."""
    if size <= max_units:
        return list(range(1, size + 1)), False
    return [*range(1, max_units), size], True


def draw_mlp(
    layer_sizes: Sequence[int],
    *,
    bias: bool = True,
    weight_labels: bool | str | Iterable[tuple[int, int, int]] = "auto",
    max_units: int = 5,
    ax: plt.Axes | None = None,
) -> Figure:
    r"""Draw a fully connected feed-forward network and return its Figure.

    Parameters
    ----------
    layer_sizes
        Units per layer without the bias unit, input first: ``(3, 4, 3)`` or ``(784, 50, 50, 10)``.
    bias
        Draw a bias unit :math:`a_0 = 1` (a hatched square) in every layer but the output, with dashed
        edges to the next layer.
    weight_labels
        ``"auto"``: when no layer is elided, label the weights :math:`w_{k,j}^{(l)}` into the first
        unit of every layer (enough to show the indexing). ``True``: label every edge. ``False``:
        none. Or an iterable of ``(l, k, j)``: the weight from unit ``j`` of layer ``l - 1`` to unit
        ``k`` of layer ``l`` (layers counted from 0 = input; ``j = 0`` is the bias unit).
    max_units
        A layer with more units is drawn as its first ``max_units - 1`` units, a vertical ellipsis
        and its last unit.
    ax
        Draw into these Axes instead of a new figure.

    Notes
    -----
    :math:`w_{k,j}^{(l)}` is row ``k``, column ``j`` of :math:`\mathbf{W}^{(l)}`: the weight from unit
    ``j`` of the previous layer to unit ``k`` of layer ``l`` (the course's convention, chapter 1).
    Every unit, bias unit, ellipsis and label carries a ``gid`` (``"unit:l:k"``, ``"bias:l"``,
    ``"ellipsis:l"``, ``"weight:l:k:j"``, ``"layer:l"``) so that tests can find them.
    """
    sizes = [int(s) for s in layer_sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"layer_sizes needs at least two layers of at least one unit each, got {layer_sizes!r}")
    if max_units < 2:
        raise ValueError(f"max_units must be at least 2, got {max_units}")
    n_layers = len(sizes)
    tags, names = _layer_tags(n_layers), _layer_names(n_layers)

    shown = [_shown_units(s, max_units) for s in sizes]
    any_elided = any(elided for _, elided in shown)
    # Rows per layer: bias on top (row 0), then units; an elided layer has one extra row for the "⋮".
    rows = [len(units) + elided + (bias and layer < n_layers - 1) for layer, (units, elided) in enumerate(shown)]
    tallest = max(rows)
    dx, radius = 2.6, 0.32

    def positions(layer: int) -> dict[int, tuple[float, float]]:
        """Centre of every drawn unit of a layer, keyed by unit index (0 = bias)."""
        units, elided = shown[layer]
        keys = ([0] if bias and layer < n_layers - 1 else []) + units
        if elided:
            keys.insert(len(keys) - 1, -1)  # -1 marks the ellipsis row
        top = (tallest - 1) / 2 + (len(keys) - tallest) / 2
        return {key: (layer * dx, top - row) for row, key in enumerate(keys)}

    pos = [positions(layer) for layer in range(n_layers)]

    if weight_labels == "auto":
        labelled = set() if any_elided else {(l, 1, j) for l in range(1, n_layers) for j in pos[l - 1] if j >= 0}
    elif weight_labels is True:
        labelled = {(l, k, j) for l in range(1, n_layers) for k in pos[l] if k > 0 for j in pos[l - 1] if j >= 0}
    elif weight_labels is False or weight_labels is None:
        labelled = set()
    else:
        labelled = {tuple(int(i) for i in triple) for triple in weight_labels}

    if ax is None:
        inches = 0.9  # per unit of data: big enough for 11-point labels inside the units
        fig, ax = plt.subplots(figsize=(inches * ((n_layers - 1) * dx + 1.8), inches * (tallest + 2.6)))
    else:
        fig = ax.figure

    # Edges first, so that units are drawn over them.
    for l in range(1, n_layers):
        for k, (x1, y1) in pos[l].items():
            if k <= 0:
                continue
            for j, (x0, y0) in pos[l - 1].items():
                if j < 0:
                    continue
                highlight = (l, k, j) in labelled
                ax.add_line(
                    Line2D(
                        [x0 + radius, x1 - radius],
                        [y0, y1],
                        color="black" if highlight else _EDGE_COLOR,
                        linewidth=1.2 if highlight else 0.7,
                        linestyle="--" if j == 0 else "-",
                        zorder=1,
                    )
                )
                if highlight:
                    t = 0.3  # near the source, where labelled edges into one unit are far apart
                    ax.text(
                        x0 + radius + t * (x1 - x0 - 2 * radius),
                        y0 + t * (y1 - y0),
                        rf"$w_{{{k},{j}}}^{{({tags[l]})}}$",
                        ha="center",
                        va="center",
                        fontsize=10,
                        zorder=4,
                        gid=f"weight:{l}:{k}:{j}",
                        bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none"},
                    )

    # Units, bias units and ellipses.
    for l in range(n_layers):
        tag = tags[l]
        fill = _LAYER_FILL["in" if l == 0 else "out" if l == n_layers - 1 else "h"]
        for k, (x, y) in pos[l].items():
            if k == -1:
                ax.text(x, y, r"$\vdots$", ha="center", va="center", fontsize=16, gid=f"ellipsis:{l}")
                continue
            if k == 0:
                patch = Rectangle(
                    (x - radius, y - radius), 2 * radius, 2 * radius,
                    facecolor=_BIAS_FILL, edgecolor="black", hatch="//", linewidth=1.0, zorder=2,
                    gid=f"bias:{l}",
                )
            else:
                patch = Circle((x, y), radius, facecolor=fill, edgecolor="black", linewidth=1.0, zorder=2,
                               gid=f"unit:{l}:{k}")
            ax.add_patch(patch)
            ax.text(
                x, y, rf"$a_{{{k}}}^{{({tag})}}$", ha="center", va="center", fontsize=11, zorder=3,
                gid=f"label:{l}:{k}",
                bbox={"boxstyle": "round,pad=0.05", "facecolor": "white", "edgecolor": "none"}
                if k == 0 else None,
            )
        top = (tallest - 1) / 2
        count = f"{sizes[l]:,} unit" + ("s" if sizes[l] != 1 else "")
        ax.text(l * dx, top + 0.75, f"{names[l]}\n{count}", ha="center", va="bottom", fontsize=12,
                gid=f"layer:{l}")

    handles = [
        Circle((0, 0), 1, facecolor=_LAYER_FILL["h"], edgecolor="black", label="unit (neuron)"),
    ]
    if bias:
        handles.append(Rectangle((0, 0), 1, 1, facecolor=_BIAS_FILL, edgecolor="black", hatch="//",
                                 label=r"bias unit $a_0 = 1$ (dashed edges)"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles),
              frameon=False, fontsize=11, handler_map={Circle: _CircleHandler()})

    bottom = -(tallest - 1) / 2
    ax.set_xlim(-0.9, (n_layers - 1) * dx + 0.9)
    ax.set_ylim(bottom - 0.6, (tallest - 1) / 2 + 1.7)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig


class _CircleHandler:
    """Legend handler that draws a circle for a Circle patch (matplotlib draws a rectangle)."""

    def legend_artist(self, legend, orig_handle, fontsize, handlebox):
        x0, y0 = handlebox.xdescent, handlebox.ydescent
        size = min(handlebox.width, handlebox.height)
        circle = Circle(
            (x0 + handlebox.width / 2, y0 + handlebox.height / 2), size / 2,
            facecolor=orig_handle.get_facecolor(), edgecolor="black", transform=handlebox.get_transform(),
        )
        handlebox.add_artist(circle)
        return circle


# --------------------------------------------------------------------------------------------------
# Digits and pixel statistics (chapters 2-3)
# --------------------------------------------------------------------------------------------------

#: Colour map for digits: dark ink on a light background, as on paper (grey levels, no hue at all).
DIGIT_CMAP = "gray_r"
_CHUNK_ROWS = 10_000  # images per step when summarising a data set, so no full float64 copy is made


def plot_digit_grid(
    images,
    labels=None,
    *,
    n_rows: int = 2,
    n_cols: int = 5,
    titles: Sequence[str] | None = None,
    image_shape: tuple[int, int] = (28, 28),
    cmap: str = DIGIT_CMAP,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Draw the first ``n_rows * n_cols`` images in a grid and return the Figure.

    ``images`` holds one image per row, flat (``(n, 784)``) or not (``(n, 28, 28)``), in any value
    range: each image is drawn with ``cmap`` (``gray_r``: ink dark, background light) scaled to its own
    minimum and maximum. Each image is titled with its label, or with ``titles[i]`` when given (for
    instance ``"t: 7 p: 9"`` for a misclassified digit). With fewer images than cells, the remaining
    cells stay empty. Axes carry no ticks: pixel positions mean nothing to the reader.
    """
    if n_rows < 1 or n_cols < 1:
        raise ValueError(f"n_rows and n_cols must be at least 1, got {n_rows} and {n_cols}")
    images = np.asarray(images)
    n_shown = min(len(images), n_rows * n_cols)
    if titles is None and labels is not None:
        titles = [str(label) for label in np.asarray(labels)[:n_shown]]
    if titles is not None and len(titles) < n_shown:
        raise ValueError(f"{n_shown} images are shown but only {len(titles)} titles or labels were given")
    if figsize is None:
        figsize = (1.3 * n_cols, 1.3 * n_rows + (0.25 * n_rows if titles is not None else 0))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=figsize, squeeze=False)
    for i, ax in enumerate(axes.flat):
        _frame_image(ax)
        if i >= n_shown:
            ax.axis("off")
            continue
        ax.imshow(images[i].reshape(image_shape), cmap=cmap, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=10)
    fig.tight_layout()
    return fig


def _frame_image(ax: plt.Axes) -> None:
    """No ticks, and a thin grey frame on all four sides (the course style hides the top and right)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color("#AAAAAA")
        spine.set_linewidth(0.8)


def pixel_statistics(images) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and standard deviation over a set of images, as float64 arrays of one image each.

    Works through the images ``10,000`` at a time, so 60,000 MNIST images never become one float64
    copy (376 MB): only the sums are kept.
    """
    images = np.asarray(images)
    flat = images.reshape(len(images), -1)
    total = np.zeros(flat.shape[1])
    total_sq = np.zeros(flat.shape[1])
    for start in range(0, len(flat), _CHUNK_ROWS):
        chunk = flat[start : start + _CHUNK_ROWS].astype(np.float64)
        total += chunk.sum(axis=0)
        total_sq += np.square(chunk).sum(axis=0)
    mean = total / len(flat)
    std = np.sqrt(np.maximum(total_sq / len(flat) - mean**2, 0.0))
    return mean.reshape(images.shape[1:]), std.reshape(images.shape[1:])


def _value_histogram(images: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of all pixel values: one bin per grey level for uint8 images, else ``bins`` equal bins."""
    flat = images.reshape(len(images), -1)
    if images.dtype == np.uint8:
        edges = np.arange(257) - 0.5
        counts = np.zeros(256, dtype=np.int64)
        for start in range(0, len(flat), _CHUNK_ROWS):
            counts += np.bincount(flat[start : start + _CHUNK_ROWS].ravel(), minlength=256)
        return counts, edges
    edges = np.linspace(float(images.min()), float(images.max()), bins + 1)
    counts = np.zeros(bins, dtype=np.int64)
    for start in range(0, len(flat), _CHUNK_ROWS):
        counts += np.histogram(flat[start : start + _CHUNK_ROWS], bins=edges)[0]
    return counts, edges


def plot_pixel_statistics(
    images,
    *,
    image_shape: tuple[int, int] = (28, 28),
    bins: int = 64,
    figsize: tuple[float, float] = (11.0, 3.4),
) -> Figure:
    """Draw the mean image, the standard-deviation image and a histogram of all pixel values.

    The two images use the course's heat-map colour map (``cividis``) with a colour bar each; the
    histogram counts every pixel of every image (one bin per grey level for ``uint8`` images, else
    ``bins`` equal bins) on a logarithmic count axis, because background pixels outnumber the others
    by far. Returns the Figure; its first three Axes are the mean, the standard deviation and the
    histogram (colour bars come after them).
    """
    images = np.asarray(images)
    if images.ndim < 2 or len(images) == 0:
        raise ValueError(f"expected a non-empty stack of images, got an array of shape {images.shape}")
    mean, std = pixel_statistics(images)
    counts, edges = _value_histogram(images, bins)

    fig, (ax_mean, ax_std, ax_hist) = plt.subplots(
        1, 3, figsize=figsize, gridspec_kw={"width_ratios": [1, 1, 1.4]}
    )
    for ax, values, title in ((ax_mean, mean, "mean of each pixel"), (ax_std, std, "standard deviation")):
        shown = ax.imshow(values.reshape(image_shape), cmap=HEATMAP_CMAP, interpolation="nearest")
        ax.set_title(title)
        _frame_image(ax)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    ax_hist.stairs(counts, edges, fill=True, color=OKABE_ITO[0])
    ax_hist.set_yscale("log")
    ax_hist.set_xlabel("pixel value")
    ax_hist.set_ylabel("number of pixels (log scale)")
    ax_hist.set_title("all pixel values")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Training and evaluation (chapters 6-7)
# --------------------------------------------------------------------------------------------------

_METRIC_TITLES = {"loss": "loss (categorical cross-entropy)", "accuracy": "accuracy"}


def plot_learning_curves(
    history,
    *,
    metrics: Sequence[str] = ("loss", "accuracy"),
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Draw each metric per epoch, training against validation, one panel per metric.

    ``history`` is what ``model.fit`` returns (a ``keras.callbacks.History``) or its ``.history``
    dict. Training is a solid line with circles, validation a dashed line with squares (Okabe–Ito blue
    and orange), so the two differ without colour too. Epochs are counted from 1. Returns the Figure,
    one Axes per metric in the order of ``metrics``.
    """
    logs = getattr(history, "history", history)
    missing = [name for name in metrics if name not in logs]
    if missing:
        raise ValueError(f"history has no {missing}; it holds {sorted(logs)}")
    if figsize is None:
        figsize = (4.8 * len(metrics), 3.6)
    fig, axes = plt.subplots(1, len(metrics), figsize=figsize, squeeze=False)
    for ax, name in zip(axes.flat, metrics):
        epochs = np.arange(1, len(logs[name]) + 1)
        marker_every = max(1, len(epochs) // 10)
        ax.plot(epochs, logs[name], color=OKABE_ITO[0], linestyle="-", marker="o",
                markevery=marker_every, label="training")
        if f"val_{name}" in logs:
            ax.plot(epochs, logs[f"val_{name}"], color=OKABE_ITO[1], linestyle="--", marker="s",
                    markevery=marker_every, label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(_METRIC_TITLES.get(name, name))
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    matrix,
    *,
    class_names: Sequence[str] | None = None,
    cmap: str = HEATMAP_CMAP,
    log_scale: bool = True,
    figsize: tuple[float, float] = (6.4, 5.6),
) -> Figure:
    """Draw a confusion matrix (rows: true class, columns: predicted class) with every count written in.

    ``matrix[i, j]`` counts the samples of class ``i`` predicted as ``j``. The diagonal holds far
    larger counts than the errors, so by default the colour scale is logarithmic above 1 (linear from 0
    to 1); the written counts are exact either way. Text is black or white, whichever contrasts more
    with its cell. Returns the
    Figure; its first Axes holds the matrix, the second the colour bar.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a confusion matrix is square, got shape {matrix.shape}")
    n = matrix.shape[0]
    names = [str(i) for i in range(n)] if class_names is None else [str(c) for c in class_names]
    if len(names) != n:
        raise ValueError(f"{len(names)} class names for a {n}x{n} matrix")
    norm = mpl.colors.SymLogNorm(linthresh=1, vmin=0, vmax=max(1, matrix.max())) if log_scale else None
    fig, ax = plt.subplots(figsize=figsize)
    shown = ax.imshow(matrix, cmap=cmap, norm=norm, interpolation="nearest")
    colormap = shown.get_cmap()
    for i in range(n):
        for j in range(n):
            cell = colormap(shown.norm(matrix[i, j]))
            ax.text(j, i, f"{matrix[i, j]:,}", ha="center", va="center", fontsize=8,
                    color=_readable_text_colour(cell), gid=f"count:{i}:{j}")
    ax.set_xticks(range(n), names)
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="number of samples")
    fig.tight_layout()
    return fig


def _readable_text_colour(background) -> str:
    """Black or white, whichever contrasts more with ``background`` (WCAG relative luminance)."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in background[:3]]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    # Contrast with black is (L + 0.05) / 0.05, with white 1.05 / (L + 0.05); equal at L = 0.179.
    return "black" if luminance > 0.179 else "white"


def plot_misclassified_digits(
    images,
    y_true,
    y_pred,
    *,
    n_rows: int = 3,
    n_cols: int = 8,
    image_shape: tuple[int, int] = (28, 28),
) -> Figure:
    """Draw the first ``n_rows * n_cols`` images whose prediction is wrong, titled ``true 4, pred 9``.

    The images are taken in data-set order (so the gallery is the same on every run with the same
    predictions) and drawn with :func:`plot_digit_grid` (``gray_r``). Raises ``ValueError`` when every
    prediction is right.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or len(y_true) != len(images):
        raise ValueError(
            f"images, y_true and y_pred must have one entry per sample, got {len(images)}, "
            f"{y_true.shape} and {y_pred.shape}"
        )
    wrong = np.flatnonzero(y_true != y_pred)[: n_rows * n_cols]
    if len(wrong) == 0:
        raise ValueError("every prediction is right: there is no misclassified digit to show")
    titles = [f"true {t}, pred {p}" for t, p in zip(y_true[wrong], y_pred[wrong])]
    return plot_digit_grid(np.asarray(images)[wrong], titles=titles, n_rows=n_rows, n_cols=n_cols,
                           image_shape=image_shape)


# --------------------------------------------------------------------------------------------------
# Hyperparameter sweeps and gradients (chapter 7)
# --------------------------------------------------------------------------------------------------

#: Line styles and markers that tell several lines apart without colour.
_LINE_STYLES = ["-", "--", "-.", ":"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _axes_or_new(ax: plt.Axes | None, figsize: tuple[float, float]) -> tuple[Figure, plt.Axes]:
    if ax is None:
        return plt.subplots(figsize=figsize)
    return ax.figure, ax


def plot_sweep(
    values: Sequence[float],
    scores: Sequence[float],
    *,
    xlabel: str,
    ylabel: str = "validation accuracy",
    log_x: bool = False,
    categorical: bool = False,
    errors: Sequence[float] | None = None,
    baseline: float | None = None,
    ax: plt.Axes | None = None,
) -> Figure:
    """Draw one score per value of a swept setting and return the Figure.

    A numeric setting (learning rate, layer size) is drawn as a line with circles: the values lie on a
    continuous axis, logarithmic with ``log_x`` (a value of 0 then goes on a symmetric-log axis, linear
    near 0). ``categorical`` is for a handful of values that are not worth reading as points of an axis
    (momentum 0, 0.5, 0.9, 0.99; decay 0, 1e-7, 1e-2): they are drawn at equal distances in the order
    given, as circles **without** a line, since a line would claim something about the values between
    them. Every value gets a tick labelled as given. ``errors`` draws an error bar of plus and minus
    ``errors[i]`` around each score (two standard errors, say). ``baseline`` marks the tutorial's value
    with a hollow black ring and a ``tutorial's value`` label.
    """
    values, scores = list(values), list(scores)
    if len(values) != len(scores) or not values:
        raise ValueError(f"need one score per value, got {len(values)} values and {len(scores)} scores")
    if errors is not None and len(list(errors)) != len(values):
        raise ValueError(f"need one error per value, got {len(list(errors))} errors for {len(values)} values")
    if baseline is not None and baseline not in values:
        raise ValueError(f"baseline {baseline!r} is not one of the values {values}")
    fig, ax = _axes_or_new(ax, (4.2, 3.2))
    positions = list(range(len(values))) if categorical else values
    ax.plot(positions, scores, color=OKABE_ITO[0], marker="o", linestyle="none" if categorical else "-",
            gid="sweep")
    if errors is not None:
        bars = ax.errorbar(positions, scores, yerr=list(errors), fmt="none", ecolor=OKABE_ITO[0], capsize=3,
                           elinewidth=1)
        bars.lines[2][0].set_gid("errors")  # the vertical bars (a LineCollection)
    if log_x and not categorical:
        if min(values) <= 0:
            positive = [abs(v) for v in values if v != 0]
            ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0)
        else:
            ax.set_xscale("log")
    ax.set_xticks(positions, [f"{v:g}" for v in values])
    ax.minorticks_off()
    if categorical:  # room for the outer points' markers and error bars
        ax.set_xlim(-0.5, len(values) - 0.5)
    if baseline is not None:
        index = values.index(baseline)
        ax.plot([positions[index]], [scores[index]], linestyle="none", marker="o", markersize=13,
                markerfacecolor="none", markeredgecolor="black", markeredgewidth=1.5, gid="baseline",
                label="tutorial's value")
        ax.legend(loc="best")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig


def plot_metric_curves(
    curves: dict[str, Sequence[float]],
    *,
    ylabel: str = "validation accuracy",
    legend_title: str | None = None,
    ax: plt.Axes | None = None,
) -> Figure:
    """Draw several per-epoch curves, one per label (``{"0.01": [...], "0.1": [...]}``), epochs from 1.

    Lines differ in colour (Okabe–Ito), line style and marker, so they can be told apart without
    colour. Returns the Figure.
    """
    if not curves:
        raise ValueError("no curve to draw")
    fig, ax = _axes_or_new(ax, (5.6, 3.6))
    for i, (label, values) in enumerate(curves.items()):
        epochs = np.arange(1, len(values) + 1)
        ax.plot(epochs, values, color=OKABE_ITO[i % len(OKABE_ITO)], linestyle=_LINE_STYLES[i % 4],
                marker=_MARKERS[i % len(_MARKERS)], label=str(label), gid=f"curve:{label}")
    ax.set_xlabel("epoch")
    ax.set_xticks(np.arange(1, max(len(v) for v in curves.values()) + 1))
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    # Beside the plot, where it cannot hide a line
    ax.legend(title=legend_title, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


def plot_gradient_norms(
    norms: dict[str, dict[str, float]],
    *,
    ylabel: str = "gradient norm of the layer's weights",
    ax: plt.Axes | None = None,
) -> Figure:
    """Draw each network's gradient norm per layer on a logarithmic axis, input side on the left.

    ``norms`` maps a network's label to what :func:`course_utils.models.gradient_norms_per_layer`
    (or :func:`~course_utils.models.error_norms_per_layer`, with its ``ylabel``) returns for it
    (``{layer name: norm}``, input side first). Layers are numbered from 1; the last is the output
    layer. Lines differ in colour, line style and marker. Returns the Figure.
    """
    if not norms:
        raise ValueError("no network's gradient norms to draw")
    fig, ax = _axes_or_new(ax, (6.4, 4.0))
    n_layers = 0
    for i, (label, per_layer) in enumerate(norms.items()):
        values = np.asarray(list(per_layer.values()), dtype=float)
        if np.any(values <= 0):
            raise ValueError(f"{label}: gradient norms must be positive to be drawn on a log scale")
        layers = np.arange(1, len(values) + 1)
        n_layers = max(n_layers, len(values))
        ax.plot(layers, values, color=OKABE_ITO[i % len(OKABE_ITO)], linestyle=_LINE_STYLES[i % 4],
                marker=_MARKERS[i % len(_MARKERS)], label=str(label), gid=f"norms:{label}")
    ax.set_yscale("log")
    ax.set_xticks(np.arange(1, n_layers + 1))
    ax.set_xlabel("layer (1 = first hidden layer, last = output layer)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best")
    return fig

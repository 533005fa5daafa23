"""Tests for course_utils.plotting: the course style and every figure helper."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests draw off screen; the helpers themselves never choose a backend

import matplotlib as mpl  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_utils import plotting  # noqa: E402
from course_utils.plotting import OKABE_ITO, draw_mlp, use_course_style  # noqa: E402
from course_utils.plotting import pixel_statistics, plot_digit_grid, plot_pixel_statistics  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_matplotlib():
    """Every test starts from matplotlib's defaults and leaves no figure open."""
    with mpl.rc_context():
        mpl.rcdefaults()
        yield
    plt.close("all")


def _gids(fig: Figure, prefix: str) -> list[str]:
    ax = fig.axes[0]
    artists = [*ax.patches, *ax.texts]
    return sorted(a.get_gid() for a in artists if (a.get_gid() or "").startswith(prefix))


def _texts(fig: Figure) -> dict[str, str]:
    return {t.get_gid(): t.get_text() for t in fig.axes[0].texts if t.get_gid()}


# -- use_course_style --------------------------------------------------------------------------------


def test_okabe_ito_has_the_eight_published_colours():
    published = {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"}
    assert set(OKABE_ITO) == published
    assert len(OKABE_ITO) == 8


def test_use_course_style_sets_a_colour_blind_safe_cycle_and_cividis():
    use_course_style()
    cycle = [c.upper() for c in mpl.rcParams["axes.prop_cycle"].by_key()["color"]]
    assert cycle == [c.upper() for c in OKABE_ITO]
    assert mpl.rcParams["image.cmap"] == "cividis"


def test_use_course_style_is_idempotent():
    use_course_style()
    first = {key: mpl.rcParams[key] for key in plotting.COURSE_RC}
    use_course_style()
    assert {key: mpl.rcParams[key] for key in plotting.COURSE_RC} == first


def test_lines_drawn_after_use_course_style_take_okabe_ito_colours():
    use_course_style()
    fig, ax = plt.subplots()
    lines = [ax.plot([0, 1], [i, i])[0] for i in range(3)]
    assert [mpl.colors.to_hex(line.get_color()).upper() for line in lines] == OKABE_ITO[:3]


# -- draw_mlp ----------------------------------------------------------------------------------------


def test_draw_mlp_returns_a_figure_with_one_axes():
    fig = draw_mlp((3, 4, 3))
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1


def test_draw_mlp_draws_every_unit_of_a_small_network_with_labels():
    fig = draw_mlp((3, 4, 3))
    assert len(_gids(fig, "unit:0:")) == 3
    assert len(_gids(fig, "unit:1:")) == 4
    assert len(_gids(fig, "unit:2:")) == 3
    texts = _texts(fig)
    assert texts["label:0:1"] == r"$a_{1}^{(in)}$"
    assert texts["label:1:4"] == r"$a_{4}^{(h)}$"
    assert texts["label:2:3"] == r"$a_{3}^{(out)}$"
    assert texts["layer:0"].startswith("input layer")
    assert texts["layer:1"].startswith("hidden layer")
    assert texts["layer:2"].startswith("output layer")


def test_draw_mlp_bias_units_in_every_layer_but_the_output():
    fig = draw_mlp((3, 4, 3), bias=True)
    assert _gids(fig, "bias:") == ["bias:0", "bias:1"]
    texts = _texts(fig)
    assert texts["label:0:0"] == r"$a_{0}^{(in)}$"
    # Drawn distinctly without relying on colour: a hatched square, not a circle.
    bias_patch = next(p for p in fig.axes[0].patches if p.get_gid() == "bias:0")
    unit_patch = next(p for p in fig.axes[0].patches if p.get_gid() == "unit:0:1")
    assert bias_patch.get_hatch()
    assert type(bias_patch) is not type(unit_patch)


def test_draw_mlp_without_bias_draws_no_bias_unit():
    fig = draw_mlp((3, 4, 3), bias=False)
    assert _gids(fig, "bias:") == []
    assert not any(gid.endswith(":0") for gid in _gids(fig, "weight:"))


def test_draw_mlp_auto_labels_the_weights_into_the_first_unit_of_each_layer():
    fig = draw_mlp((3, 4, 3))
    weights = _gids(fig, "weight:")
    # hidden unit 1 receives bias + 3 inputs; output unit 1 receives bias + 4 hidden units
    assert len(weights) == 4 + 5
    texts = _texts(fig)
    assert texts["weight:1:1:2"] == r"$w_{1,2}^{(h)}$"
    assert texts["weight:2:1:0"] == r"$w_{1,0}^{(out)}$"


def test_draw_mlp_weight_labels_all_none_and_chosen():
    assert len(_gids(draw_mlp((2, 2, 1), weight_labels=True), "weight:")) == 3 * 2 + 3 * 1
    assert _gids(draw_mlp((2, 2, 1), weight_labels=False), "weight:") == []
    chosen = draw_mlp((2, 2, 1), weight_labels=[(1, 2, 1)])
    assert _gids(chosen, "weight:") == ["weight:1:2:1"]


def test_draw_mlp_elides_big_layers_with_an_ellipsis_and_the_count():
    fig = draw_mlp((784, 50, 50, 10))
    texts = _texts(fig)
    # A few units, an ellipsis and the last unit per big layer, never 784 circles.
    assert len(_gids(fig, "unit:0:")) == 5
    assert "unit:0:784" in _gids(fig, "unit:0:")
    assert texts["label:0:784"] == r"$a_{784}^{(in)}$"
    assert _gids(fig, "ellipsis:") == ["ellipsis:0", "ellipsis:1", "ellipsis:2", "ellipsis:3"]
    assert "784 units" in texts["layer:0"]
    assert "50 units" in texts["layer:1"]
    # Two hidden layers are told apart in names and superscripts.
    assert texts["layer:1"].startswith("hidden layer 1")
    assert texts["label:2:1"] == r"$a_{1}^{(h_2)}$"
    # Labelling weights of an elided network would be unreadable, so "auto" labels none.
    assert _gids(fig, "weight:") == []


def test_draw_mlp_max_units_controls_elision():
    fig = draw_mlp((10, 3), max_units=10)
    assert len(_gids(fig, "unit:0:")) == 10
    assert _gids(fig, "ellipsis:") == []


def test_draw_mlp_draws_into_given_axes():
    fig, ax = plt.subplots()
    assert draw_mlp((2, 3, 1), ax=ax) is fig
    assert len([p for p in ax.patches if (p.get_gid() or "").startswith("unit:")]) == 6


@pytest.mark.parametrize("sizes", [(3,), (3, 0, 2), ()])
def test_draw_mlp_rejects_networks_without_two_layers(sizes):
    with pytest.raises(ValueError, match="layer_sizes"):
        draw_mlp(sizes)


# -- digits and pixel statistics (chapters 2-3) ------------------------------------------------------


def _synthetic_digits(n: int = 12, side: int = 6, seed: int = 0):
    """Small random uint8 'images' and labels: the tests never need MNIST itself."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, side * side), dtype=np.uint8), np.arange(n) % 10


def test_plot_digit_grid_draws_one_image_per_cell_titled_with_its_label():
    images, labels = _synthetic_digits(12, side=6)
    fig = plot_digit_grid(images, labels, image_shape=(6, 6))
    axes = fig.axes
    assert len(axes) == 10  # 2 x 5 by default; the two extra images are not drawn
    assert [ax.get_title() for ax in axes] == [str(d) for d in range(10)]
    for ax, image in zip(axes, images):
        (shown,) = ax.get_images()
        np.testing.assert_array_equal(shown.get_array(), image.reshape(6, 6))
        assert shown.get_cmap().name == "gray_r"
        assert ax.get_xticks().size == 0 and ax.get_yticks().size == 0


def test_plot_digit_grid_titles_override_labels_and_leave_empty_cells_blank():
    images, labels = _synthetic_digits(3, side=4)
    fig = plot_digit_grid(images.reshape(3, 4, 4), labels, n_rows=2, n_cols=2, titles=["a", "b", "c"],
                          image_shape=(4, 4))
    assert [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]
    assert not fig.axes[3].get_images() and not fig.axes[3].axison


def test_plot_digit_grid_without_labels_has_no_titles():
    images, _ = _synthetic_digits(4, side=4)
    fig = plot_digit_grid(images, n_rows=1, n_cols=4, image_shape=(4, 4))
    assert all(ax.get_title() == "" for ax in fig.axes)


@pytest.mark.parametrize("kwargs", [{"n_rows": 0}, {"titles": ["only one"]}])
def test_plot_digit_grid_rejects_bad_arguments(kwargs):
    images, _ = _synthetic_digits(4, side=4)
    with pytest.raises(ValueError):
        plot_digit_grid(images, image_shape=(4, 4), **kwargs)


def test_pixel_statistics_match_numpy_in_chunks():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(25_003, 9), dtype=np.uint8)  # more than two chunks
    mean, std = pixel_statistics(images)
    np.testing.assert_allclose(mean, images.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, images.std(axis=0), rtol=1e-9)
    mean_2d, _ = pixel_statistics(images.reshape(-1, 3, 3))
    assert mean_2d.shape == (3, 3)


def test_constant_pixels_have_zero_standard_deviation():
    images = np.full((50, 4), 255, dtype=np.uint8)
    _, std = pixel_statistics(images)
    np.testing.assert_array_equal(std, 0.0)


def test_plot_pixel_statistics_shows_mean_std_and_a_complete_histogram():
    images, _ = _synthetic_digits(40, side=5)
    fig = plot_pixel_statistics(images, image_shape=(5, 5))
    ax_mean, ax_std, ax_hist = fig.axes[:3]
    np.testing.assert_allclose(ax_mean.get_images()[0].get_array(), images.mean(axis=0).reshape(5, 5))
    np.testing.assert_allclose(ax_std.get_images()[0].get_array(), images.std(axis=0).reshape(5, 5))
    assert ax_mean.get_images()[0].get_cmap().name == "cividis"
    assert len(fig.axes) == 5  # and a colour bar for each image
    (stairs,) = ax_hist.patches
    assert stairs.get_data().values.sum() == images.size  # every pixel counted once
    assert len(stairs.get_data().values) == 256  # uint8: one bin per grey level
    assert ax_hist.get_yscale() == "log"


def test_plot_pixel_statistics_bins_float_images_between_their_extremes():
    images = np.linspace(-1, 1, 200, dtype=np.float32).reshape(8, 25)
    fig = plot_pixel_statistics(images, image_shape=(5, 5), bins=10)
    counts, edges = fig.axes[2].patches[0].get_data()[:2]
    assert len(counts) == 10 and counts.sum() == images.size
    assert edges[0] == pytest.approx(-1) and edges[-1] == pytest.approx(1)


# -- training and evaluation: learning curves, confusion matrix, misclassified digits ----------------


def _history(n_epochs: int = 12) -> dict[str, list[float]]:
    epochs = np.arange(1, n_epochs + 1)
    return {
        "loss": list(1 / epochs), "accuracy": list(1 - 0.5 / epochs),
        "val_loss": list(1.2 / epochs), "val_accuracy": list(1 - 0.6 / epochs),
    }


def test_learning_curves_one_panel_per_metric_training_and_validation():
    history = _history()
    fig = plotting.plot_learning_curves(history)
    assert len(fig.axes) == 2
    for ax, name in zip(fig.axes, ("loss", "accuracy")):
        train, val = ax.get_lines()
        np.testing.assert_array_equal(train.get_xdata(), np.arange(1, 13))  # epochs counted from 1
        np.testing.assert_allclose(train.get_ydata(), history[name])
        np.testing.assert_allclose(val.get_ydata(), history[f"val_{name}"])
        # Told apart without colour: line style and marker differ too.
        assert train.get_linestyle() != val.get_linestyle()
        assert train.get_marker() != val.get_marker()
        assert {train.get_color().upper(), val.get_color().upper()} <= set(OKABE_ITO)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training", "validation"]
        assert ax.get_xlabel() == "epoch"


def test_learning_curves_accept_a_keras_history_object_and_no_validation():
    class History:  # what model.fit returns: the logs live in .history
        history = {"loss": [0.9, 0.5, 0.3]}

    fig = plotting.plot_learning_curves(History(), metrics=("loss",))
    (ax,) = fig.axes
    assert len(ax.get_lines()) == 1


def test_learning_curves_name_a_missing_metric():
    with pytest.raises(ValueError, match="accuracy"):
        plotting.plot_learning_curves({"loss": [1.0]})


def test_confusion_matrix_plot_writes_every_count_with_a_safe_colour_map():
    matrix = np.array([[50, 2, 0], [1, 40, 3], [0, 0, 1000]])
    fig = plotting.plot_confusion_matrix(matrix, class_names=["a", "b", "c"])
    ax = fig.axes[0]
    counts = {t.get_gid(): t.get_text() for t in ax.texts}
    assert counts["count:2:2"] == "1,000" and counts["count:0:1"] == "2" and counts["count:1:0"] == "1"
    assert len(counts) == 9
    image = ax.get_images()[0]
    assert image.get_cmap().name == "cividis"
    np.testing.assert_array_equal(image.get_array(), matrix)
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    # Light text on the darkest cell (zero), dark text on the brightest (the largest count).
    colours = {t.get_gid(): mpl.colors.to_hex(t.get_color()) for t in ax.texts}
    assert colours["count:0:2"] == "#ffffff" and colours["count:2:2"] == "#000000"


def test_confusion_matrix_plot_rejects_a_non_square_matrix():
    with pytest.raises(ValueError, match="square"):
        plotting.plot_confusion_matrix(np.zeros((2, 3)))


def test_misclassified_gallery_shows_only_wrong_predictions_in_order():
    images = np.arange(6 * 4, dtype=np.uint8).reshape(6, 4)
    y_true = np.array([0, 1, 2, 3, 4, 5])
    y_pred = np.array([0, 7, 2, 9, 4, 1])
    fig = plotting.plot_misclassified_digits(images, y_true, y_pred, n_rows=1, n_cols=4, image_shape=(2, 2))
    shown = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in shown] == ["true 1, pred 7", "true 3, pred 9", "true 5, pred 1"]
    np.testing.assert_array_equal(shown[0].get_images()[0].get_array(), images[1].reshape(2, 2))
    assert shown[0].get_images()[0].get_cmap().name == "gray_r"


def test_misclassified_gallery_needs_a_mistake():
    with pytest.raises(ValueError, match="every prediction is right"):
        plotting.plot_misclassified_digits(np.zeros((2, 4)), [1, 2], [1, 2], image_shape=(2, 2))


# -- chapter 7: sweeps, per-epoch curves, gradient norms ---------------------------------------------

from course_utils.plotting import plot_gradient_norms, plot_metric_curves, plot_sweep  # noqa: E402


def test_plot_sweep_draws_one_point_per_value_and_rings_the_baseline():
    fig = plot_sweep([0.001, 0.01, 0.1], [0.8, 0.9, 0.85], xlabel="learning rate", log_x=True, baseline=0.01)
    ax = fig.axes[0]
    line = next(line for line in ax.lines if line.get_gid() == "sweep")
    np.testing.assert_array_equal(line.get_xdata(), [0.001, 0.01, 0.1])
    ring = next(line for line in ax.lines if line.get_gid() == "baseline")
    assert (list(ring.get_xdata()), list(ring.get_ydata())) == ([0.01], [0.9])
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.001", "0.01", "0.1"]
    assert ax.get_xlabel() == "learning rate" and ax.get_ylabel() == "validation accuracy"


def test_plot_sweep_with_zero_uses_symlog_and_draws_into_given_axes():
    fig, axes = plt.subplots(1, 2)
    returned = plot_sweep([0.0, 1e-7, 1e-2], [0.8, 0.8, 0.7], xlabel="decay", log_x=True, ax=axes[1])
    assert returned is fig and axes[1].get_xscale() == "symlog" and not axes[0].lines
    assert plot_sweep([0, 0.5], [1, 2], xlabel="m").axes[0].get_xscale() == "linear"


def test_plot_sweep_categorical_draws_points_without_a_line_and_keeps_the_values_as_labels():
    fig = plot_sweep([0.0, 0.5, 0.9, 0.99], [0.6, 0.7, 0.8, 0.9], xlabel="momentum", categorical=True,
                     baseline=0.9, log_x=True)
    ax = fig.axes[0]
    points = next(line for line in ax.lines if line.get_gid() == "sweep")
    np.testing.assert_array_equal(points.get_xdata(), [0, 1, 2, 3])
    assert points.get_linestyle() == "None" and points.get_marker() == "o"  # categories: no line joins them
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.5", "0.9", "0.99"]
    assert list(ax.lines[1].get_xdata()) == [2] and ax.get_xscale() == "linear"


def test_plot_sweep_joins_numeric_values_with_a_line():
    ax = plot_sweep([10, 50, 200], [0.8, 0.9, 0.92], xlabel="units", log_x=True).axes[0]
    assert ax.lines[0].get_linestyle() == "-"


def test_plot_sweep_draws_error_bars_of_the_given_size():
    fig = plot_sweep([0.0, 1e-7, 1e-2], [0.8, 0.8, 0.7], errors=[0.02, 0.02, 0.03], xlabel="decay",
                     categorical=True)
    ax = fig.axes[0]
    bars = next(c for c in ax.collections if c.get_gid() == "errors")
    segments = [np.asarray(segment) for segment in bars.get_segments()]
    assert [tuple(s[:, 0]) for s in segments] == [(0, 0), (1, 1), (2, 2)]
    np.testing.assert_allclose([s[:, 1] for s in segments], [[0.78, 0.82], [0.78, 0.82], [0.67, 0.73]])
    with pytest.raises(ValueError, match="error"):
        plot_sweep([1, 2], [0.5, 0.6], errors=[0.1], xlabel="x")


@pytest.mark.parametrize("kwargs", [{"values": [1, 2], "scores": [1]},
                                    {"values": [1, 2], "scores": [1, 2], "baseline": 3}])
def test_plot_sweep_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        plot_sweep(xlabel="x", **kwargs)


def test_plot_metric_curves_lines_differ_without_colour():
    fig = plot_metric_curves({"0.01": [0.5, 0.6, 0.7], "0.1": [0.6, 0.7, 0.8]}, legend_title="learning rate")
    ax = fig.axes[0]
    assert [line.get_gid() for line in ax.lines] == ["curve:0.01", "curve:0.1"]
    first, second = ax.lines
    assert first.get_linestyle() != second.get_linestyle() and first.get_marker() != second.get_marker()
    np.testing.assert_array_equal(first.get_xdata(), [1, 2, 3])
    assert ax.get_legend().get_title().get_text() == "learning rate"
    with pytest.raises(ValueError):
        plot_metric_curves({})


def test_plot_gradient_norms_one_line_per_network_on_a_log_axis():
    norms = {"sigmoid": {"hidden_1": 1e-6, "hidden_2": 1e-3, "output": 0.5},
             "relu": {"hidden_1": 0.8, "hidden_2": 0.7, "output": 0.9}}
    ax = plot_gradient_norms(norms).axes[0]
    assert ax.get_yscale() == "log"
    assert [line.get_gid() for line in ax.lines] == ["norms:sigmoid", "norms:relu"]
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [1e-6, 1e-3, 0.5])
    assert ax.lines[0].get_color() != ax.lines[1].get_color()
    assert ax.lines[0].get_marker() != ax.lines[1].get_marker()
    with pytest.raises(ValueError, match="positive"):
        plot_gradient_norms({"bad": {"a": 0.0}})

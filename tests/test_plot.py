"""The results figure (python -m utils.summary --plot), read back from the figure object it draws."""
import pytest

from tests.test_summary import experiments  # noqa: F401 (a fixture)
from tests.test_summary import KD_ARGS, UNIX_ARGS, imagenet_json, summary_json, teacher_json, write_runs
from utils.table import plot
from utils.table.summary import main

PAPER_KD, PAPER_UNIXKD = (100.0, 73.34), (87.32, 74.86)  # resnet32x4 -> resnet8x4 (utils.table.paper)
SYNTHETIC = {"kind": "synthetic", "train_images": 1000, "test_images": 200}


@pytest.fixture
def figures(monkeypatch):
    """The figures main() draws, kept open instead of written."""
    pytest.importorskip("matplotlib")
    drawn = []
    monkeypatch.setattr(plot, "save", lambda figure, path, pyplot: drawn.append(figure))
    return drawn


def trial(content, epochs=6):
    """A run of `content`'s settings for `epochs` epochs on the generated CIFAR-100 stand-in."""
    content = {**content, "data": SYNTHETIC, "epochs_done": epochs, "args": {**content["args"], "epoch": epochs}}
    return content


def drawn_figure(figures, folder, *flags):
    assert main([str(folder), "--plot", str(folder / "plot.png"), *flags]) == 0
    (figure,) = figures
    figures.clear()
    return figure


def markers(axes, filled=True) -> dict:
    """{(x, y): marker} of our points (filled, with error bars) or of the published ones (hollow)."""
    if filled:
        lines = [container.lines[0] for container in axes.containers]
        assert all(line.get_markerfacecolor() != "white" for line in lines)
    else:
        lines = [line for line in axes.get_lines() if line.get_markerfacecolor() == "white"]
    return {(float(x), float(y)): line.get_marker() for line in lines for x, y in zip(line.get_xdata(), line.get_ydata())}


def folders(root, *names):
    for name in names:
        (root / name).mkdir()
    return (root / name for name in names)


def test_the_title_names_the_data_the_runs_trained_on(figures, tmp_path):
    cifar, imagenet, synthetic = folders(tmp_path, "cifar", "imagenet", "synthetic")
    write_runs(cifar, {"v0_student_kd_0": summary_json(KD_ARGS, 0, 73.0, 100.0)})
    write_runs(imagenet, {"v0_student_in_0": imagenet_json(0)})
    write_runs(synthetic, {"v0_student_kd_0": trial(summary_json(KD_ARGS, 0, 70.0, 100.0)),
                           "v0_student_in_0": imagenet_json(0, "synthetic", 120)})
    assert drawn_figure(figures, cifar).get_suptitle().startswith("CIFAR-100: top-1 accuracy against")
    assert drawn_figure(figures, imagenet).get_suptitle().startswith("ImageNet: top-1 accuracy against")
    figure = drawn_figure(figures, synthetic, "--all")
    assert figure.get_suptitle().startswith("synthetic CIFAR-100 and synthetic ImageNet: top-1")
    # Panels of different data name theirs; torchvision's networks lose their imagenet_ prefix.
    assert [axes.get_title() for axes in figure.axes if axes.get_visible()] == [
        "resnet32x4 \u2192 resnet8x4\u00b9\nsynthetic CIFAR-100", "resnet34 \u2192 resnet18\u00b2\nsynthetic ImageNet"]


def test_published_figures_are_hollow_markers_of_the_same_shape_beside_ours(figures, tmp_path):
    write_runs(tmp_path, {"v0_student_kd_0": summary_json(KD_ARGS, 0, 73.0, 100.0),
                          "v0_student_unix_0": summary_json(UNIX_ARGS, 0, 74.5, 87.3)})
    (axes,) = drawn_figure(figures, tmp_path).axes
    assert markers(axes) == {(100.0, 73.0): "o", (87.3, 74.5): "s"}
    assert markers(axes, filled=False) == {PAPER_KD: "o", PAPER_UNIXKD: "s"}


def test_a_trial_is_compared_with_no_published_figure(figures, tmp_path):
    write_runs(tmp_path, {"v0_student_kd_0": trial(summary_json(KD_ARGS, 0, 70.0, 100.0))})
    (axes,) = drawn_figure(figures, tmp_path, "--all").axes
    assert markers(axes) == {(100.0, 70.0): "o"} and markers(axes, filled=False) == {}


def test_each_method_keeps_its_marker_in_every_figure(figures, tmp_path):
    alone, both = folders(tmp_path, "alone", "both")
    write_runs(alone, {"v0_student_unix_0": trial(summary_json(UNIX_ARGS, 0, 66.0, 94.0))})
    write_runs(both, {"v0_student_kd_0": trial(summary_json(KD_ARGS, 0, 70.0, 100.0)),
                      "v0_student_unix_0": trial(summary_json(UNIX_ARGS, 0, 66.0, 94.0))})
    assert set(markers(drawn_figure(figures, alone, "--all").axes[0]).values()) == {"s"}
    assert markers(drawn_figure(figures, both, "--all").axes[0]) == {(100.0, 70.0): "o", (94.0, 66.0): "s"}
    assert plot.method_style("UNIX + AT") == plot.method_style("UNIX + AT") in plot.OTHER_STYLES  # by its name


def test_the_teacher_and_the_student_alone_are_reference_lines(figures, tmp_path):
    write_runs(tmp_path, {"v0_student_kd_0": summary_json(KD_ARGS, 0, 73.0, 100.0),  # its teacher measured 79.4
                          "teacher_resnet8x4": teacher_json("resnet8x4", 0, 72.0),
                          "teacher_resnet8x4_seed1": teacher_json("resnet8x4", 1, 73.0)})
    (axes,) = drawn_figure(figures, tmp_path).axes
    lines = {(line.get_linestyle(), line.get_color(), float(line.get_ydata()[0])) for line in axes.get_lines()
             if line.get_marker() in ("None", None, "")}
    assert lines == {("--", plot.OURS_LINE, 79.4), (":", plot.OURS_LINE, 72.5),  # ours: the student alone over 2 seeds
                     ("--", plot.PUBLISHED_LINE, 79.63), (":", plot.PUBLISHED_LINE, 72.51)}


def test_the_legend_is_one_short_row_and_departures_are_footnotes(figures, tmp_path):
    runs = {f"v0_student_{name}_{epochs}": trial(summary_json(args, 0, 70.0, 100.0 if name == "kd" else 94.0), epochs)
            for name, args in (("kd", KD_ARGS), ("unix", UNIX_ARGS)) for epochs in (1, 2, 3)}
    write_runs(tmp_path, runs)
    figure = drawn_figure(figures, tmp_path, "--all")
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == ["KD", "UNIXKD", "teacher"]
    figure.canvas.draw()
    assert len({round(text.get_window_extent().y0) for text in legend.get_texts()}) == 1  # one row
    area = legend.get_window_extent().width * legend.get_window_extent().height
    assert area < 0.03 * figure.bbox.width * figure.bbox.height
    titles = [axes.get_title() for axes in figure.axes if axes.get_visible()]
    assert titles == [f"resnet32x4 \u2192 resnet8x4{mark}" for mark in "\u00b9\u00b2\u00b3"]
    footnotes = figure.texts[-1].get_text().splitlines()
    assert footnotes[1:] == [f"{mark} not the protocol: --epoch {epochs}, synthetic data (1,000 training images)"
                             for mark, epochs in zip("\u00b9\u00b2\u00b3", (1, 2, 3))]


def test_a_setting_other_than_its_methods_main_one_is_noted_beside_its_marker(figures, tmp_path):
    tagged = trial(summary_json(KD_ARGS, 0, 69.0, 100.0))
    tagged["args"]["tag"] = "fast"
    write_runs(tmp_path, {"v0_student_kd_0": trial(summary_json(KD_ARGS, 0, 70.0, 100.0)), "v0_student_kd_fast": tagged,
                          "v0_student_k32_0": trial(summary_json({**UNIX_ARGS, "k": 32}, 0, 64.0, 89.0)),
                          "v0_student_unix_0": trial(summary_json(UNIX_ARGS, 0, 66.0, 94.0))})
    (axes,) = drawn_figure(figures, tmp_path, "--all").axes
    assert {text.get_text(): text.xy for text in axes.texts} == {"--tag fast": (100.0, 69.0), "k32": (89.0, 64.0)}


def test_the_plot_file_is_checked_before_the_table_prints(experiments, tmp_path, capsys, exit_status):
    pytest.importorskip("matplotlib")
    for target, message in ((tmp_path / "missing" / "out.png", f"the folder {tmp_path / 'missing'} does not exist"),
                            (tmp_path / "out.jpg2", "'.jpg2' is not an image format matplotlib writes"),
                            (tmp_path, "is a folder")):
        assert exit_status(main, [str(experiments), "--plot", str(target)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and err.startswith(f"error: --plot {target}") and message in err


def test_without_all_a_folder_of_trials_says_no_plot_was_written(tmp_path, capsys, exit_status):
    pytest.importorskip("matplotlib")
    write_runs(tmp_path, {"v0_student_kd_0": trial(summary_json(KD_ARGS, 0, 70.0, 100.0))})
    assert exit_status(main, [str(tmp_path), "--plot", str(tmp_path / "plot.png")]) == 1
    out, err = capsys.readouterr()
    assert "left out: 1 finished run" in out  # the table still prints
    assert err == (f"error: no plot written to {tmp_path / 'plot.png'}: no finished student run follows its dataset's "
                   "protocol; --all plots the 1 that depart from it\n")
    assert not (tmp_path / "plot.png").exists()

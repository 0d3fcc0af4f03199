"""The results figure (python -m utils.summary --plot), read back from the figure object it draws."""
import pytest

from tests.run_summaries import (KD_ARGS, UNIX_ARGS, imagenet_json, imagenet_unix, summary_json, teacher_json,
                                 write_runs)
from utils.distillers import settings_revision
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
    # A method with no style of its own gets one chosen by its name, whatever else the figure draws.
    styles = {method: plot.method_style(method) for method in ("UNIX + AT", "UNIX + SP", "KD + AT")}
    assert set(styles.values()) <= set(plot.OTHER_STYLES)
    assert {method: plot.method_style(method) for method in reversed(styles)} == styles


def test_the_teacher_and_the_student_alone_are_reference_lines(figures, tmp_path):
    of_tagged_teacher = summary_json(KD_ARGS, 0, 60.0, 100.0)
    of_tagged_teacher.update(teacher_acc=50.0)
    of_tagged_teacher["args"]["teacher_path"] = "experiments/teacher_resnet32x4_dali/ckpt/best.pth"
    tagged_alone = teacher_json("resnet8x4", 0, 10.0)
    tagged_alone["args"]["tag"] = "fast"
    write_runs(tmp_path, {"v0_student_kd_0": summary_json(KD_ARGS, 0, 73.0, 100.0),  # its teacher measured 79.4
                          "v0_student_kd_0_dali": of_tagged_teacher,  # not teacher_resnet32x4's students: no line
                          "teacher_resnet8x4": teacher_json("resnet8x4", 0, 72.0),
                          "teacher_resnet8x4_seed1": teacher_json("resnet8x4", 1, 73.0),
                          "teacher_resnet8x4_fast": tagged_alone})  # other settings: not the line
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


def test_a_student_trained_alone_only_with_tag_draws_no_line_of_ours(figures, tmp_path):
    tagged_alone = teacher_json("resnet8x4", 0, 10.0)
    tagged_alone["args"]["tag"] = "fast"
    write_runs(tmp_path, {"v0_student_kd_0": summary_json(KD_ARGS, 0, 73.0, 100.0), "teacher_resnet8x4_fast": tagged_alone})
    (axes,) = drawn_figure(figures, tmp_path).axes
    assert [line.get_color() for line in axes.get_lines() if line.get_linestyle() == ":"] == [plot.PUBLISHED_LINE]


def test_a_setting_other_than_its_methods_main_one_is_noted_beside_its_marker(figures, tmp_path):
    tagged = trial(summary_json(KD_ARGS, 0, 69.0, 100.0))
    tagged["args"]["tag"] = "fast"
    write_runs(tmp_path, {"v0_student_kd_0": trial(summary_json(KD_ARGS, 0, 70.0, 100.0)), "v0_student_kd_fast": tagged,
                          "v0_student_k32_0": trial(summary_json({**UNIX_ARGS, "k": 32}, 0, 64.0, 89.0)),
                          "v0_student_unix_0": trial(summary_json(UNIX_ARGS, 0, 66.0, 94.0))})
    figure = drawn_figure(figures, tmp_path, "--all")
    (axes,) = figure.axes
    assert {text.get_text(): text.xy for text in axes.texts} == {"--tag fast": (100.0, 69.0), "k32": (89.0, 64.0)}
    # Each keeps its method's marker: a setting is no method of its own.
    assert markers(axes) == {(100.0, 70.0): "o", (100.0, 69.0): "o", (89.0, 64.0): "s", (94.0, 66.0): "s"}
    figure.draw_without_rendering()
    panel = axes.get_window_extent()
    for text in axes.texts:  # on the inner side of its marker: the one at 100 % stays in its panel
        assert panel.x0 < text.get_window_extent().x0 and text.get_window_extent().x1 < panel.x1, text.get_text()


def test_error_bars_are_the_sample_std_over_seeds(figures, tmp_path):
    write_runs(tmp_path, {"v0_student_kd_0": summary_json(KD_ARGS, 0, 73.0, 100.0),
                          "v0_student_kd_1": summary_json(KD_ARGS, 1, 73.6, 100.0)})
    (axes,) = drawn_figure(figures, tmp_path).axes
    (container,) = axes.containers
    (bar,) = container.lines[2][0].get_segments()
    std = 0.6 / 2 ** 0.5  # 73.0 and 73.6: sqrt((0.3^2 + 0.3^2) / (2 - 1))
    assert bar.ravel().tolist() == pytest.approx([100.0, 73.3 - std, 100.0, 73.3 + std])


def test_notes_at_nearly_one_point_are_stacked_not_overlapping(figures, tmp_path):
    write_runs(tmp_path, {"v0_student_unix_0": summary_json(UNIX_ARGS, 0, 74.5, 87.3),
                          "v0_student_mix0_0": summary_json({**UNIX_ARGS, "mix_strategy": 0}, 0, 72.0, 87.32),
                          "v0_student_s0_0": summary_json({**UNIX_ARGS, "strategy": 0}, 0, 71.95, 87.32)})
    figure = drawn_figure(figures, tmp_path)
    figure.draw_without_rendering()
    boxes = {text.get_text(): text.get_window_extent() for text in figure.axes[0].texts}
    assert set(boxes) == {"mix0", "S0"} and not boxes["mix0"].overlaps(boxes["S0"])


def test_notes_are_short_a_repeated_seed_numbered_another_teacher_run_by_what_sets_it_apart(figures, tmp_path):
    of_seed1 = summary_json(KD_ARGS, 1, 72.0, 100.0)
    of_seed1["args"]["teacher_path"] = "experiments/teacher_resnet32x4_seed1"
    write_runs(tmp_path, {"v0_student_kd_0": summary_json(KD_ARGS, 0, 73.0, 100.0),
                          "v0_student_kd_0_copy": summary_json(KD_ARGS, 0, 71.0, 100.0),
                          "v0_student_kd_1_of_seed1": of_seed1})
    (axes,) = drawn_figure(figures, tmp_path).axes
    assert {text.get_text(): text.xy for text in axes.texts} == {
        "seed 0 #1": (100.0, 73.0), "seed 0 #2": (100.0, 71.0), "teacher seed1": (100.0, 72.0)}


def test_on_imagenet_unixkd_at_its_defaults_for_its_batch_is_the_main_setting(figures, tmp_path):
    # k and b follow each process's batch there (3/4 and 1/2 of it): 24 and 16 of 32, 48 and 32 of 64.
    write_runs(tmp_path, {"v0_student_32": imagenet_unix(0, 24, 16, 256), "v0_student_64": imagenet_unix(0, 48, 32, 512),
                          "v0_student_k24_of_64": imagenet_unix(0, 24, 16, 512)})
    (axes,) = drawn_figure(figures, tmp_path).axes
    assert [text.get_text() for text in axes.texts] == ["k24 b16 of 64"]


def every_method(root, teacher_lines=True):
    """One protocol run of each method with a style of its own on resnet32x4 -> resnet8x4, the student alone too."""
    dkd, lskd = ({"distill": name, "settings_revision": settings_revision(name, "cifar100")} for name in ("DKD", "LSKD"))
    runs = {f"v0_student_{index}": summary_json(args, 0, 74.0 + index / 10, computation)
            for index, (args, computation) in enumerate(((KD_ARGS, 100.0), (UNIX_ARGS, 87.3), ({**KD_ARGS, **dkd}, 100.0),
                                                        ({**UNIX_ARGS, **dkd}, 87.3), ({**KD_ARGS, **lskd}, 100.0),
                                                        ({**UNIX_ARGS, **lskd}, 87.3)))}
    write_runs(root, {**runs, "teacher_resnet8x4": teacher_json("resnet8x4", 0, 72.0)} if teacher_lines else runs)


def saved_width(path) -> float:
    """The width of a written PNG, in inches at the 300 dpi it is written with."""
    from PIL import Image

    with Image.open(path) as image:
        return image.size[0] / 300


def test_one_panel_is_a_column_wide_and_more_panels_the_text_width(tmp_path):
    pytest.importorskip("matplotlib")
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    every_method(one)  # the widest legend: six methods, published, the two lines
    assert main([str(one), "--plot", str(tmp_path / "one.png")]) == 0
    write_runs(two, {f"v0_student_{epochs}": trial(summary_json(KD_ARGS, 0, 70.0, 100.0), epochs) for epochs in (1, 2)})
    assert main([str(two), "--all", "--plot", str(tmp_path / "two.png")]) == 0
    # As the file is written (tight bounding box): the legend and the footnotes fit in the width the panels take.
    assert plot.COLUMN_WIDTH - 0.2 < saved_width(tmp_path / "one.png") <= plot.COLUMN_WIDTH + 2 * plot.SAVE_PAD
    assert plot.PAPER_WIDTH - 0.3 < saved_width(tmp_path / "two.png") <= plot.PAPER_WIDTH + 2 * plot.SAVE_PAD


def test_a_legend_in_several_rows_reads_row_by_row(figures, tmp_path):
    every_method(tmp_path)
    figure = drawn_figure(figures, tmp_path)
    (legend,) = figure.legends
    figure.draw_without_rendering()
    texts = sorted(legend.get_texts(), key=lambda text: (-round(text.get_window_extent().y0), text.get_window_extent().x0))
    assert [text.get_text() for text in texts] == ["KD", "UNIXKD", "DKD", "UNIX + DKD", "LSKD", "UNIX + LSKD", "published",
                                                   "teacher", "student alone"]
    assert len({round(text.get_window_extent().y0) for text in texts}) > 1  # the column holds no single row of nine


def test_the_legend_names_the_published_methods_drawn_and_a_line_in_the_style_drawn(figures, tmp_path):
    every_method(tmp_path, teacher_lines=False)
    for name in ("v0_student_0", "v0_student_1"):  # DKD and the others only: KD's and UNIXKD's published markers stay
        (tmp_path / name / "summary.json").unlink()
        (tmp_path / name).rmdir()
    (legend,) = drawn_figure(figures, tmp_path).legends
    entries = {text.get_text(): line for text, line in zip(legend.get_texts(), legend.get_lines())}
    assert set(entries) == {"KD", "UNIXKD", "DKD", "UNIX + DKD", "LSKD", "UNIX + LSKD", "published", "teacher",
                            "student alone"}
    assert entries["teacher"].get_color() == plot.OURS_LINE  # its students measured it: ours is drawn
    assert entries["student alone"].get_color() == plot.PUBLISHED_LINE  # no teacher.py run: the paper's line only


def test_a_pdf_embeds_truetype_fonts(tmp_path):
    pytest.importorskip("matplotlib")
    write_runs(tmp_path, {"v0_student_kd_0": summary_json(KD_ARGS, 0, 70.0, 100.0)})
    assert main([str(tmp_path), "--plot", str(tmp_path / "plot.pdf")]) == 0
    pdf = (tmp_path / "plot.pdf").read_bytes()
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf  # TrueType (Type 42), as publishers ask, not Type 3


def test_nothing_is_partly_transparent_which_postscript_cannot_draw(figures, tmp_path):
    from matplotlib.colors import to_rgba_array
    from matplotlib.text import Text

    tagged = summary_json(KD_ARGS, 0, 69.0, 100.0)
    tagged["args"]["tag"] = "fast"  # a note, in its box
    write_runs(tmp_path, {"v0_student_kd_0": summary_json(KD_ARGS, 0, 70.0, 100.0), "v0_student_kd_fast": tagged})
    figure = drawn_figure(figures, tmp_path)
    (legend,) = figure.legends
    unframed = {legend.legendPatch}  # the legend has no frame: its patch is never drawn
    boxes = [text.get_bbox_patch() for text in figure.findobj(Text) if text.get_bbox_patch()]  # not children of theirs
    alphas = set()
    for artist in (artist for artist in figure.findobj() + boxes if artist.get_visible() and artist not in unframed):
        alphas.add(1.0 if artist.get_alpha() is None else artist.get_alpha())
        for colour in ("get_facecolor", "get_edgecolor", "get_color"):
            if hasattr(artist, colour):
                alphas.update(to_rgba_array(getattr(artist, colour)())[:, 3].tolist())
    assert alphas <= {0.0, 1.0}  # drawn, or not at all: the PostScript backend warns of anything between


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

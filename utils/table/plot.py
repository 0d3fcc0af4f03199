"""The results figure (python -m utils.summary --plot FILE): test top-1 accuracy against training computation,
one panel per pair, as the paper's figures draw it.

In each panel a filled marker is our mean over seeds (error bar: sample std), a hollow one of the same shape
and colour the published figure; the teacher (dashed) and the student trained alone (dotted) are reference
lines, ours dark and the published ones light. A method keeps its marker in every figure (METHOD_STYLES); a
setting other than the method's main one (an ablation, a --tag run) is its marker with a short note beside it.
Runs off their dataset's protocol are numbered in their panel's title and described in a footnote, not in
the legend. The summary module builds the panels (utils.table.summary); this module only draws them.

Fonts are embedded as TrueType (Type 42), as publishers ask of a PDF, and nothing is drawn partly transparent,
which PostScript cannot show.
"""
import textwrap
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from utils.errors import UserError

# Okabe & Ito's colour-blind safe palette; one (marker, colour) per method, in every figure.
METHOD_STYLES = {"KD": ("o", "#0072B2"), "UNIXKD": ("s", "#D55E00"), "DKD": ("^", "#009E73"),
                 "UNIX + DKD": ("v", "#CC79A7"), "LSKD": ("D", "#E69F00"), "UNIX + LSKD": ("d", "#56B4E9")}
OTHER_STYLES = (("P", "#000000"), ("X", "#7F7F7F"), ("h", "#8C564B"), ("*", "#9467BD"))
OURS_LINE, PUBLISHED_LINE = "0.2", "0.65"  # the reference lines' greys
REFERENCES = {"teacher": "--", "student alone": ":"}  # line style of each reference line
PAPER_WIDTH, COLUMN_WIDTH = 7.0, 3.4  # inches: a two-column paper's text width and column width
PANEL_HEIGHT = 1.9
TITLE_CHARACTERS, FOOTNOTE_CHARACTERS = 95, 125  # characters of a line across the text width, at their sizes
SAVE_PAD = 0.02  # inches around the drawing in the file: the figure stays the width it was drawn at
NOTE_GAP = 1.0   # points between two notes stacked beside markers at nearly the same place
STYLE = {"font.size": 8, "axes.titlesize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7,
         "axes.spines.top": False, "axes.spines.right": False, "pdf.fonttype": 42, "ps.fonttype": 42}
SUPERSCRIPT_DIGITS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


@dataclass(frozen=True)
class Point:
    """One marker: a method's result on a pair."""

    method: str                  # the method without its settings (KD, UNIXKD, UNIX + DKD, ...): marker and colour
    computation: float           # % of conventional KD's training computation
    accuracy: float              # best test top-1 %
    std: Optional[float] = None  # ours: sample std over seeds; None for a published figure
    note: str = ""               # beside the marker: what sets this setting apart from the method's main one


@dataclass(frozen=True)
class Panel:
    """One pair: our points, the published ones, and the reference lines, each (label, accuracy)."""

    teacher: str
    student: str
    data: str              # what the runs trained on: 'CIFAR-100', 'ImageNet', 'synthetic CIFAR-100', ...
    departures: str = ""   # how the runs depart from their dataset's protocol; '' for the protocol's
    ours: tuple = ()       # (Point)
    published: tuple = ()  # (Point), hollow
    references: tuple = ()            # ((REFERENCES key, accuracy)): ours
    published_references: tuple = ()  # the published ones


def method_style(method: str) -> tuple:
    """(marker, colour) of a method: its own in METHOD_STYLES, else one chosen by its name, the same in
    every figure."""
    return METHOD_STYLES.get(method) or OTHER_STYLES[zlib.crc32(method.encode()) % len(OTHER_STYLES)]


def short_name(arch: str) -> str:
    """torchvision's networks without their imagenet_ prefix: the figure names the data."""
    return arch.removeprefix("imagenet_")


def check_target(path: str) -> None:
    """Refuse a file matplotlib cannot write (unknown format, missing folder) before any work is done."""
    from matplotlib.backend_bases import FigureCanvasBase

    target = Path(path)
    if target.is_dir():
        raise UserError(f"--plot {path} is a folder; give a file name such as {target / 'results.png'}")
    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    suffix = target.suffix[1:].lower()
    if suffix not in formats:
        given = f"'.{suffix}' is not an image format matplotlib writes" if suffix else "it has no format suffix"
        raise UserError(f"--plot {path}: {given}; end the name with one of {', '.join('.' + f for f in formats)}")
    if not target.parent.is_dir():
        raise UserError(f"--plot {path}: the folder {target.parent} does not exist; create it or give another path")


def draw(panels, pyplot):
    """The figure of `panels` (a list of Panel), at a paper's size: one column's width for one panel, the
    text width for more."""
    columns = 1 if len(panels) == 1 else 2 if len(panels) <= 4 else 3 if len(panels) <= 9 else 4
    rows = -(-len(panels) // columns)
    width = COLUMN_WIDTH if columns == 1 else PAPER_WIDTH
    with pyplot.rc_context(STYLE):
        figure, grid = pyplot.subplots(rows, columns, figsize=(width, PANEL_HEIGHT * rows + 0.9), squeeze=False,
                                       sharex=True, layout="constrained")
        data_names = list(dict.fromkeys(panel.data for panel in panels))
        notes = list(dict.fromkeys(panel.departures for panel in panels if panel.departures))
        for axes, panel in zip(grid.flat, panels):
            draw_panel(axes, panel, notes, len(data_names) > 1)
        for axes in grid.flat[len(panels):]:
            axes.set_visible(False)
        for axes in grid[-2, len(panels) - (rows - 1) * columns:] if rows > 1 else ():
            axes.xaxis.set_tick_params(labelbottom=True)  # no panel below to carry the shared axis' labels
        title = f"{listed(data_names)}: top-1 accuracy against training computation"
        figure.suptitle(textwrap.fill(title, int(TITLE_CHARACTERS * width / PAPER_WIDTH)))
        figure.supxlabel("training computation (% of conventional KD's)", fontsize=8)
        figure.supylabel("best test top-1 accuracy (%)", fontsize=8)
        legend = add_legend(figure, panels)
        add_footnotes(figure, legend, notes, any(panel.published for panel in panels))
        separate_notes(figure)
    return figure


def footnote_mark(index: int) -> str:
    """¹ for the first footnote, ¹⁰ for the tenth."""
    return str(index + 1).translate(SUPERSCRIPT_DIGITS)


def listed(names) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def draw_panel(axes, panel, notes, name_data) -> None:
    for label, accuracy in panel.published_references:
        axes.axhline(accuracy, color=PUBLISHED_LINE, linestyle=REFERENCES[label], linewidth=0.9, zorder=1)
    for label, accuracy in panel.references:
        axes.axhline(accuracy, color=OURS_LINE, linestyle=REFERENCES[label], linewidth=0.9, zorder=1)
    for point in panel.published:
        marker, colour = method_style(point.method)
        axes.plot(point.computation, point.accuracy, marker=marker, markersize=6.5, markerfacecolor="white",
                  markeredgecolor=colour, markeredgewidth=1.1, linestyle="none", zorder=2)
    for point in panel.ours:
        marker, colour = method_style(point.method)
        axes.errorbar(point.computation, point.accuracy, yerr=point.std, marker=marker, markersize=5, color=colour,
                      capsize=2, elinewidth=0.8, linestyle="none", zorder=3)
    middle = sum(axes.get_xlim()) / 2
    for point in panel.ours:
        if point.note:  # on the inner side of its marker, so that a note at 100 % stays inside the panel
            inner = -1 if point.computation >= middle else 1
            axes.annotate(point.note, (point.computation, point.accuracy), xytext=(5 * inner, 0), va="center",
                          ha="left" if inner > 0 else "right", textcoords="offset points", fontsize=6,
                          color=method_style(point.method)[1], bbox={"facecolor": "white", "edgecolor": "none",
                                                                     "pad": 0.3})
    title = f"{short_name(panel.teacher)} \u2192 {short_name(panel.student)}"
    if panel.departures:
        title += footnote_mark(notes.index(panel.departures))
    axes.set_title(f"{title}\n{panel.data}" if name_data else title)
    axes.grid(color="0.92", linewidth=0.5)  # light grey, not transparent black: PostScript has no transparency
    axes.margins(x=0.12, y=0.15)


def add_legend(figure, panels):
    """Below the panels: each method drawn (ours or published), then what hollow markers and the lines mean, in
    as many columns as the figure's width holds, read row by row."""
    from matplotlib.lines import Line2D

    drawn = dict.fromkeys(point.method for panel in panels for point in panel.ours + panel.published)
    methods = sorted(drawn, key=lambda method: list(METHOD_STYLES).index(method) if method in METHOD_STYLES else
                     len(METHOD_STYLES))  # in the same order in every figure; others as they come
    handles = [Line2D([], [], marker=method_style(m)[0], color=method_style(m)[1], linestyle="none", label=m)
               for m in methods]
    if any(panel.published for panel in panels):
        handles.append(Line2D([], [], marker="o", markerfacecolor="white", markeredgecolor="0.3", color="0.3",
                              linestyle="none", label="published"))
    ours = {label for panel in panels for label, _ in panel.references}
    published = {label for panel in panels for label, _ in panel.published_references}
    for label, style in REFERENCES.items():
        if label in ours | published:  # ours dark; light where only the published line is drawn
            handles.append(Line2D([], [], color=OURS_LINE if label in ours else PUBLISHED_LINE, linestyle=style,
                                  linewidth=0.9, label=label))
    renderer = figure.canvas.get_renderer()
    for columns in range(len(handles), 0, -1):
        # Hung from the figure's lower edge: constrained layout would set a legend "outside" over the x label.
        legend = figure.legend(handles=row_major(handles, columns), loc="upper center", bbox_to_anchor=(0.5, 0),
                               ncols=columns, frameon=False, handlelength=1.6, columnspacing=1.0, handletextpad=0.5)
        if columns == 1 or legend.get_window_extent(renderer).width <= figure.bbox.width:
            return legend
        legend.remove()


def row_major(handles, columns: int) -> list:
    """The handles in the order that makes a legend of `columns` columns, which matplotlib fills column by column,
    read row by row."""
    rows = -(-len(handles) // columns)
    return [handles[row * columns + column] for column in range(columns) for row in range(rows)
            if row * columns + column < len(handles)]


def add_footnotes(figure, legend, notes, published) -> None:
    """Below the legend: what the markers and lines are, then each numbered departure from the protocol, each
    wrapped to the figure's width."""
    characters = int(FOOTNOTE_CHARACTERS * figure.get_figwidth() / PAPER_WIDTH)
    lines = textwrap.wrap("Filled markers: ours, mean and sample std over seeds" +
                          ("; hollow markers and light lines: published." if published else "."), characters)
    for number, note in enumerate(notes):
        lines += textwrap.wrap(f"{footnote_mark(number)} not the protocol: {note}", characters, subsequent_indent="  ")
    # In figure coordinates, which a tight bounding box shifts along with the legend (inches would stay behind).
    below = figure.transFigure.inverted().transform(legend.get_window_extent(figure.canvas.get_renderer()).p0)[1]
    figure.text(0.01, below - 0.005, "\n".join(lines), fontsize=6, va="top", ha="left", color="0.25")


def separate_notes(figure) -> None:
    """Move a note that overlaps another of its panel (two settings at nearly the same point: mix0 and S0 at
    87.3 %) below it, once the layout has placed the panels."""
    if all(len(axes.texts) < 2 for axes in figure.axes):
        return  # no two notes in one panel: no layout to wait for
    figure.draw_without_rendering()
    renderer, points_per_pixel = figure.canvas.get_renderer(), 72 / figure.dpi
    for axes in figure.axes:
        placed = []
        for note in sorted(axes.texts, key=lambda text: -text.get_window_extent(renderer).y1):
            box = note.get_window_extent(renderer)
            while (above := next((other for other in placed if box.overlaps(other)), None)) is not None:
                x, y = note.xyann
                note.xyann = (x, y - (box.y1 - above.y0) * points_per_pixel - NOTE_GAP)
                box = note.get_window_extent(renderer)
            placed.append(box)


def save(figure, path: str, pyplot) -> None:
    try:
        with pyplot.rc_context(STYLE):  # the font types are read when the file is written
            figure.savefig(path, dpi=300, bbox_inches="tight", pad_inches=SAVE_PAD)
    except OSError as error:
        raise UserError(f"cannot write the plot {path}: {error.strerror or error}") from None
    finally:
        pyplot.close(figure)

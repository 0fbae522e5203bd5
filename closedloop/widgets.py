"""Explorers: a chapter's figure driven by controls, live in Jupyter and scrubbable in the book.

An explorer is one matplotlib figure plus one function ``draw(**values)`` that redraws it in
place for one value of each control. The same two things give both of its forms:

- the **live form** (in Jupyter, with a kernel): an ipywidgets layout of sliders and the figure,
  shown as a PNG ``Image``. Moving a control calls ``draw`` and re-renders, so every value is
  computed when asked for. Controls that train (a ``Trainer``) run in a background thread
  with a progress bar, and a second click while one runs is refused.
- the **static form** (in the built book, without a kernel): ``draw`` is called once per
  precomputed *frame* and each frame is stored as a small palette PNG inside one
  self-contained HTML block whose range slider shows one frame at a time. It needs no kernel,
  no CDN and no library: a line of JavaScript in the slider's ``oninput`` switches frames.

An ``Explorer`` displays as a single output whose MIME bundle carries both forms. A Jupyter
front end with ipywidgets shows the widget view (it ranks first there). The book ranks
``text/html`` above widget views (``nb_mime_priority_overrides`` in ``_config.yml``), so its
pages show the static form instead of a widget that could not compute.

Building an explorer for a new chapter (e.g. Chapter 3's alpha and T sliders) takes three
pieces of this module::

    fig = Figure(figsize=(WIDTH, 3.4), layout="constrained")
    ax = fig.subplots()
    (line,) = ax.plot([], [])

    def draw(alpha, T):                     # one keyword per control, updates fig in place
        line.set_data(*lambda1_path(alpha, T))
        ax.set_title(f"alpha = {alpha:g}, T = {T}")

    controls = {"alpha": slider("alpha", 0.5, min=0.0, max=1.0, step=0.05),
                "T": slider("T", 50, min=10, max=200, step=10)}
    frames = [{"alpha": a, "T": 50} for a in np.linspace(0, 1, 11)]   # what the book scrubs
    return Explorer(fig, draw, controls, frames, label=lambda v: f"alpha = {v['alpha']:.2f}")

A ``selector`` gives a choice among values (e.g. beta), and ``Trainer`` plus
``epoch_progress`` add a guarded "train" button (see ``stage1_explorer`` for a full example).
Keep frames few (a dozen to two dozen) and figures book-width: each frame adds its PNG to the
page. Introduced in Chapter 2, section "Explore stage 1".
"""

from __future__ import annotations

import base64
import html
import io
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

import ipywidgets as widgets
import matplotlib as mpl
import numpy as np
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import PlaceHolderLayoutEngine


__all__ = ["Explorer", "Trainer", "epoch_explorer", "epoch_progress", "epochs_note",
           "pick_frames", "render_png", "selector", "single_draw", "slider", "sparse_log_ticks",
           "static_html"]

# each chapter's explorer lives beside its figures in ``closedloop.explorers``; the old names
# still resolve here, lazily (an explorer module imports this one)
_MOVED = {"gain_space_explorer": "ch1", "stage1_explorer": "ch2", "tradeoff_explorer": "ch3",
          "tracking_explorer": "ch4", "atlas_explorer": "ch5"}


def __getattr__(name):
    if name in _MOVED:
        from importlib import import_module

        return getattr(import_module(f".explorers.{_MOVED[name]}", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

LIVE_DPI = 100     # the live figure (a PNG re-rendered on every change)
FRAME_DPI = 80     # each static frame; book-width figures are then about 560 px wide
FRAME_COLORS = 96  # palette size of a static frame (line art needs few colours)
MAX_FRAMES = 24    # default upper limit on static frames per explorer


# -- controls ---------------------------------------------------------------------------------
def slider(description: str, value, *, min=None, max=None, step=None, options=None,
           log: bool = False, readout_format: str | None = None) -> widgets.ValueWidget:
    """A slider with ``continuous_update`` off, so that a dragged slider computes once, where it
    is released (the explorers compute, some of them train).

    ``options``: a sequence of values (a ``SelectionSlider``, e.g. recorded epochs);
    ``log=True``: a ``FloatLogSlider`` over [min, max] (decades, ``step`` in log10 units);
    otherwise an ``IntSlider`` if ``value`` and ``step`` are integers, else a ``FloatSlider``.
    """
    common = dict(description=description, continuous_update=False,
                  style={"description_width": "initial"})
    if options is not None:
        return widgets.SelectionSlider(options=list(options), value=value, **common)
    if log:
        return widgets.FloatLogSlider(value=value, base=10, min=np.log10(min),
                                      max=np.log10(max), step=step or 0.1,
                                      readout_format=readout_format or ".1e", **common)
    if isinstance(value, (int, np.integer)) and isinstance(step or 1, (int, np.integer)):
        return widgets.IntSlider(value=int(value), min=int(min), max=int(max),
                                 step=int(step or 1), **common)
    return widgets.FloatSlider(value=float(value), min=float(min), max=float(max),
                               step=float(step or (max - min) / 100),
                               readout_format=readout_format or ".3g", **common)


def selector(description: str, options, value=None) -> widgets.ValueWidget:
    """A choice among a few values (``ToggleButtons``), e.g. the control cost beta."""
    options = list(options)
    return widgets.ToggleButtons(options=options, value=options[0] if value is None else value,
                                 description=description,
                                 style={"description_width": "initial", "button_width": "auto"})


def pick_frames(available, n: int = MAX_FRAMES, include=()) -> list:
    """At most ``n`` values of the sorted ``available`` (e.g. recorded epochs) for the static
    form: the first and last, every value of ``include`` (snapped to the nearest available),
    and the rest spread half evenly, half geometrically (training moves fastest early)."""
    avail = np.unique(np.asarray(available))
    if len(avail) <= n:
        return avail.tolist()

    def snap(v):
        return avail[np.abs(avail - v).argmin()]

    chosen = {avail[0], avail[-1], *(snap(v) for v in include if v is not None)}
    lo, hi = float(avail[0]), float(avail[-1])
    spread = np.concatenate([np.linspace(lo, hi, n), lo - 1 + np.geomspace(1, hi - lo + 1, n)])
    for v in spread[np.argsort(np.tile(np.arange(n), 2), kind="stable")]:
        if len(chosen) >= n:
            break
        chosen.add(snap(v))
    return sorted(v.item() for v in chosen)


# -- rendering --------------------------------------------------------------------------------
def render_png(fig: Figure, dpi: int = LIVE_DPI, colors: int | None = None) -> bytes:
    """``fig`` as PNG bytes; ``colors``: reduce to a palette of that many colours (a frame of
    line art shrinks about threefold and looks the same).

    ``fig`` is drawn once (``single_draw``). The palette path takes the drawn pixels raw, not
    as a PNG matplotlib compresses and PIL decompresses, and compresses its palette PNG at
    zlib level 8: 3% larger than ``optimize=True`` (level 9) and about 2.5 times faster.
    """
    buf = io.BytesIO()
    with single_draw(fig):
        fig.savefig(buf, format="png" if colors is None else "rgba", dpi=dpi,
                    facecolor="white")
    if colors is None:
        return buf.getvalue()
    from PIL import Image

    w, h = (int(v) for v in fig.get_size_inches() * dpi)  # Agg's canvas size at ``dpi``
    raw = buf.getbuffer()
    if len(raw) != 4 * w * h:
        raise RuntimeError(f"expected a {w} x {h} RGBA frame, got {len(raw)} bytes")
    img = Image.frombuffer("RGBA", (w, h), raw, "raw", "RGBA", 0, 1).convert("RGB")
    img = img.quantize(colors=colors, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    img.save(out, format="png", compress_level=8)
    return out.getvalue()


@contextmanager
def single_draw(fig: Figure):
    """While in this block, ``fig.savefig`` draws ``fig`` once, not twice, if its layout
    is frozen (``fig.set_layout_engine("none")`` after a layout engine, as an
    ``Explorer`` does).

    matplotlib then keeps a placeholder engine, and savefig draws every figure that has an
    engine once without output (for the layout) before the draw it saves, although the
    placeholder lays out nothing. Here the figure has no engine during the block; the
    placeholder is put back after it. The engine is taken off with rcParams' layout defaults
    off, which ``set_layout_engine(None)`` would otherwise apply (the book's style,
    ``plotting.use_style``, turns constrained layout on: the frames were drawn twice there).
    Without a frozen layout (a live engine, or none) nothing changes.
    """
    engine = fig.get_layout_engine()
    if not isinstance(engine, PlaceHolderLayoutEngine):
        yield
        return
    with mpl.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
        fig.set_layout_engine(None)
    try:
        yield
    finally:
        fig.set_layout_engine(engine)


_SUPERSCRIPT = str.maketrans("0123456789-", "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077"
                                            "\u2078\u2079\u207b")


def _power_of_ten(value, pos=None) -> str:
    """'10' with a Unicode superscript exponent at powers of ten, '' elsewhere (plain text:
    mathtext tick labels cost most of a log-scale frame's drawing time)."""
    if value <= 0:
        return ""
    e = np.log10(value)
    return "10" + str(round(e)).translate(_SUPERSCRIPT) if abs(e - round(e)) < 1e-9 else ""


def sparse_log_ticks(*axes, numticks: int = 6):
    """Few major ticks, labelled 10\u207f in plain text, and no minor ticks on the log axes of
    ``axes``: a loss spanning 40 decades otherwise gets a label per decade, which crowds the
    panel and makes every frame slow to draw."""
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                axis.set_major_locator(mpl.ticker.LogLocator(numticks=numticks))
                axis.set_major_formatter(mpl.ticker.FuncFormatter(_power_of_ten))
                axis.set_minor_locator(mpl.ticker.NullLocator())


_SCRUB_JS = ("var r=this.closest('.cl-explorer'),f=r.querySelectorAll('.cl-frame'),"
             "i=+this.value;for(var j=0;j<f.length;j++){f[j].style.display=j==i?'':'none';}"
             "r.querySelector('.cl-explorer-label').textContent=f[i].getAttribute('data-label');")


def static_html(pngs: list[bytes], labels: list[str], *, name: str, start: int = 0,
                note: str = "") -> str:
    """The static form: one HTML block with every frame as an inline PNG, one visible at a
    time, and a range slider (keyboard arrows work too) that switches frames in the browser.

    ``labels[i]`` is shown next to the slider for frame i (e.g. "epoch 120"); ``name`` is the
    slider's accessible name; ``start`` the frame shown first. Self-contained: no external
    script, style or font, so the page works offline and from a local folder.
    """
    if not pngs or len(pngs) != len(labels):
        raise ValueError(f"need one label per frame, got {len(pngs)} frames and "
                         f"{len(labels)} labels")
    start = int(np.clip(start, 0, len(pngs) - 1))
    imgs = []
    for i, (png, lab) in enumerate(zip(pngs, labels)):
        src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        display = "" if i == start else "display:none;"
        imgs.append(f'<img class="cl-frame" src="{src}" data-label="{html.escape(lab)}" '
                    f'alt="{html.escape(name)}: {html.escape(lab)}" '
                    f'style="{display}max-width:100%;height:auto">')
    note_html = (f'<span class="cl-explorer-note" style="font-size:85%;opacity:.75">'
                 f'{html.escape(note)}</span>' if note else "")
    return (
        f'<div class="cl-explorer" data-frames="{len(pngs)}" style="margin:.5em 0 1em 0">'
        f'<div class="cl-explorer-frames">{"".join(imgs)}</div>'
        f'<div class="cl-explorer-controls" style="display:flex;flex-wrap:wrap;gap:.4em 1em;'
        f'align-items:center">'
        f'<input type="range" class="cl-explorer-slider" min="0" max="{len(pngs) - 1}" '
        f'step="1" value="{start}" aria-label="{html.escape(name)}" style="flex:1 1 16em" '
        f'oninput="{_SCRUB_JS}">'
        f'<output class="cl-explorer-label" style="min-width:9em;font-variant-numeric:'
        f'tabular-nums">{html.escape(labels[start])}</output>{note_html}</div></div>')


# -- the scaffold -----------------------------------------------------------------------------
class Explorer:
    """A figure driven by controls, in a live form (ipywidgets) and a static form (frames).

    ``fig``: a ``matplotlib.figure.Figure`` made with ``Figure(...)`` (not pyplot, so the
    inline backend never shows it a second time); ``draw(**values)``: redraws ``fig`` in
    place for one value per control; ``controls``: ``{name: widget}``, the arguments of
    ``draw`` (``slider``, ``selector``); ``frames``: ``[{name: value}]``, what the static
    form shows, in slider order; ``label(values) -> str``: a frame's caption next to the
    slider; ``start``: the frame shown first (index); ``actions``: extra widgets under the
    figure (e.g. ``Trainer.widget``); ``note``: a line under the static slider.

    Displaying an Explorer shows one form or the other (see the module docstring);
    ``explorer.widget`` is the live form, ``explorer.static_html()`` the static one,
    ``explorer.set(name=value)`` moves a control as a user would (and redraws).
    ``artists`` is free for an explorer to expose what ``draw`` changes (tests read it).
    """

    def __init__(self, fig: Figure, draw: Callable, controls: dict, frames: list[dict], *,
                 label: Callable | None = None, start: int = 0, actions=(), note: str = "",
                 name: str = "explorer"):
        if not frames:
            raise ValueError("an explorer needs at least one frame for its static form")
        self.fig, self.draw, self.controls, self.frames = fig, draw, dict(controls), frames
        self.label = label or (lambda v: ", ".join(f"{k} = {x}" for k, x in v.items()))
        self.start, self.actions, self.note, self.name = start, list(actions), note, name
        self.artists: dict = {}
        self._lock = threading.RLock()
        self._static = None
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        if type(fig.canvas) is FigureCanvasBase:  # a Figure(...) has no drawing canvas:
            FigureCanvasAgg(fig)  # an Agg one keeps its renderer, and so the text metrics
            # the renderer caches, from one render to the next (savefig's own is new each time)
        with self._lock:  # lay the figure out once, at the first values: panels then hold
            self.draw(**self.values)  # still while a slider moves, and frames render faster
            fig.draw_without_rendering()
            fig.set_layout_engine("none")
        self.refresh()
        for w in self.controls.values():
            w.observe(lambda change: self.redraw(), names="value")
        self.widget = widgets.VBox([widgets.HBox(list(self.controls.values()),
                                                 layout=widgets.Layout(flex_flow="row wrap")),
                                    self.image, *self.actions])

    @property
    def values(self) -> dict:
        return {k: w.value for k, w in self.controls.items()}

    def set(self, **values):
        """Move controls as a user would; the figure follows (once per control moved)."""
        for k, v in values.items():
            self.controls[k].value = v

    def redraw(self):
        """Draw the figure at the controls' values and show it in the live form."""
        with self._lock:
            self.draw(**self.values)
            self.image.value = render_png(self.fig, LIVE_DPI)

    def refresh(self):
        """Re-render after something other than a control changed the figure (a training)."""
        with self._lock:
            self.image.value = render_png(self.fig, LIVE_DPI)

    def static_html(self) -> str:
        """The static form (computed once): every frame drawn and stored as a palette PNG."""
        if self._static is None:
            with self._lock:
                current = self.values
                pngs, labels = [], []
                for values in self.frames:
                    self.draw(**{**current, **values})
                    pngs.append(render_png(self.fig, FRAME_DPI, FRAME_COLORS))
                    labels.append(self.label({**current, **values}))
                self.draw(**current)
            self._static = static_html(pngs, labels, name=self.name, start=self.start,
                                       note=self.note)
        return self._static

    def _repr_mimebundle_(self, **kwargs):
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/html"] = self.static_html()
        bundle["text/plain"] = f"<{self.name}: {len(self.frames)} frames>"
        return bundle


class Trainer:
    """A "train" button that can't be double-started, with a progress bar and a status line.

    ``run(report)`` does the work and returns a result; it calls ``report(fraction)`` with the
    fraction done (0..1) as it goes (``epoch_progress`` turns that into a training monitor).
    ``done(result)`` then shows the result (e.g. redraws a panel and calls
    ``Explorer.refresh``). ``params``: widgets read by ``run`` (shown beside the button).

    A click starts ``run`` in a background thread (``background=False``: in the caller's),
    so the kernel stays responsive and a second click while it runs is refused (a lock, and
    the button is disabled meanwhile). Errors end up in the status line and in ``error``.
    The built book never runs it: without a kernel nothing is clicked, and nothing of it is
    printed into the page.
    """

    def __init__(self, run: Callable, done: Callable, *, description: str = "train",
                 params=(), background: bool = True):
        self._run, self._done, self.background = run, done, background
        self.button = widgets.Button(description=description, icon="play",
                                     button_style="primary",
                                     tooltip="train with the values above")
        self.progress = widgets.IntProgress(value=0, min=0, max=100,
                                            layout=widgets.Layout(width="14em"))
        self.status = widgets.Label("")
        self.widget = widgets.VBox([
            widgets.HBox(list(params), layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.button, self.progress, self.status])])
        self.started, self.result, self.error = 0, None, None
        self._lock = threading.Lock()
        self._thread = None
        self.button.on_click(lambda _: self.start())

    @property
    def running(self) -> bool:
        return self._lock.locked()

    def start(self) -> bool:
        """Start a run; False (and nothing started) if one is still running."""
        if not self._lock.acquire(blocking=False):
            self.status.value = "still training: wait for this run to finish"
            return False
        self.started += 1
        self.button.disabled = True
        self.progress.value, self.progress.bar_style = 0, ""
        self.status.value = "training..."
        if self.background:
            self._thread = threading.Thread(target=self._work, daemon=True)
            self._thread.start()
        else:
            self._work()
        return True

    def join(self, timeout: float | None = None):
        """Wait for the current run to finish (for scripts and tests)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _report(self, fraction: float):
        pct = int(100 * min(max(fraction, 0.0), 1.0))
        if pct != self.progress.value:  # one message per percent, not per epoch
            self.progress.value = pct

    def _work(self):
        tick = time.perf_counter()
        try:
            self.error = None
            self.result = self._run(self._report)
            self._done(self.result)
            self.progress.value, self.progress.bar_style = 100, "success"
            message = getattr(self.result, "message", "")
            self.status.value = message or f"done in {time.perf_counter() - tick:.1f} s"
        except Exception as exc:  # shown to the reader, kept for scripts
            self.error = exc
            self.progress.bar_style = "danger"
            self.status.value = f"failed: {type(exc).__name__}: {exc}"
        finally:
            self.button.disabled = False
            self._lock.release()


def epoch_progress(epochs: int, report: Callable):
    """A training monitor (``train_closed_loop(..., monitor=...)``) that only reports
    progress: ``report(fraction)`` once per epoch, with nothing recorded."""
    count = [0]

    def monitor(agent):
        count[0] += 1
        report(count[0] / (epochs + 1))
        return {}

    return monitor


def epoch_explorer(fig, draw, art, epochs, n_frames, include, name) -> "Explorer":
    """An Explorer with one epoch slider over ``epochs``, whose static form shows
    ``n_frames`` of them (the ``include`` epochs among them), starting at the last."""
    frames = pick_frames(epochs, n_frames, include)
    control = slider("epoch", epochs[-1], options=epochs)
    ex = Explorer(fig, draw, {"epoch": control}, [{"epoch": e} for e in frames],
                  label=lambda v: f"epoch {v['epoch']}", start=len(frames) - 1, name=name,
                  note=epochs_note(len(frames), len(epochs)))
    ex.artists = art
    return ex


def epochs_note(shown: int, recorded: int) -> str:
    if shown >= recorded:
        return f"all {recorded} recorded epochs"
    return f"{shown} of {recorded} recorded epochs; run the notebook to scrub all of them"

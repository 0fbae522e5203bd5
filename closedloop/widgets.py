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

import ipywidgets as widgets
import matplotlib as mpl
import numpy as np
import torch
from matplotlib.figure import Figure

from . import coupled, gains, theory, tracking
from .agents import RankOneAgent
from .plotting import PALETTE, WIDTH, complex_plane, shade_stages

__all__ = ["Explorer", "Trainer", "atlas_explorer", "epoch_progress", "gain_space_explorer",
           "pick_frames", "render_png", "selector", "slider", "sparse_log_ticks",
           "stage1_explorer", "static_html", "tracking_explorer", "tradeoff_explorer"]

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
    line art shrinks about threefold and looks the same)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    if colors is None:
        return buf.getvalue()
    from PIL import Image

    buf.seek(0)
    img = Image.open(buf).convert("RGB").quantize(colors=colors, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    img.save(out, format="png", optimize=True)
    return out.getvalue()


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


def _epoch_explorer(fig, draw, art, epochs, n_frames, include, name) -> "Explorer":
    """An Explorer with one epoch slider over ``epochs``, whose static form shows
    ``n_frames`` of them (the ``include`` epochs among them), starting at the last."""
    frames = pick_frames(epochs, n_frames, include)
    control = slider("epoch", epochs[-1], options=epochs)
    ex = Explorer(fig, draw, {"epoch": control}, [{"epoch": e} for e in frames],
                  label=lambda v: f"epoch {v['epoch']}", start=len(frames) - 1, name=name,
                  note=_epochs_note(len(frames), len(epochs)))
    ex.artists = art
    return ex


def _epochs_note(shown: int, recorded: int) -> str:
    if shown >= recorded:
        return f"all {recorded} recorded epochs"
    return f"{shown} of {recorded} recorded epochs; run the notebook to scrub all of them"


# -- Chapter 1 --------------------------------------------------------------------------------
def gain_space_explorer(h_closed, h_open, like, env, *, T: int = 50, x0=(1.0, 1.0),
                        lim=(-1.8, 0.6), n_grid: int = 201, n_frames: int = MAX_FRAMES,
                        include=()) -> Explorer:
    """Chapter 1: an epoch slider that moves both networks through gain space together with
    their rollouts from ``x0``.

    Left: the stability regions of the linear feedback u = k.x, both training paths (faint),
    each path up to the chosen epoch (solid) and where each network is then. Right: position
    and control of both networks from ``x0``, rebuilt from the parameter snapshots (``like``:
    any agent of the trained type). The slider runs over the snapshot epochs the two histories
    share; the static form shows ``n_frames`` of them (and ``include``, e.g. the peak epoch).
    Introduced in Chapter 1, section "Explore the two roads".
    """
    from .figures.ch1 import COLORS, REGION_COLORS

    if "snapshot_epoch" not in h_closed.arrays or "snapshot_epoch" not in h_open.arrays:
        raise ValueError("both histories need parameter snapshots (train with snapshot_every)")
    epochs = np.intersect1d(h_closed.snapshot_epoch, h_open.snapshot_epoch).tolist()
    if not epochs:
        raise ValueError("the two histories share no snapshot epoch")
    runs = {"closed": h_closed, "open": h_open}
    start = torch.tensor([x0], dtype=env.dtype)
    traj = {name: {} for name in runs}
    for name, h in runs.items():  # every rollout up front: a few ms each, and fixed y-limits
        for e in epochs:
            with torch.no_grad():
                out = coupled.rollout(h.agent_at(e, like), env, start, T)
            traj[name][e] = (out["x"][:, 0, 0].numpy(), out["u"][:, 0].numpy())
    top = max(max(np.abs(np.concatenate(v)).max() for v in t.values()) for t in traj.values())
    top = float(np.clip(top, 1.5, 1e6)) * 1.5

    fig = Figure(figsize=(WIDTH, 4.2), layout="constrained")
    ax = fig.subplot_mosaic([["gain", "pos"], ["gain", "u"]], width_ratios=[1.05, 1])
    g = ax["gain"]
    _, _, grid = gains.gain_grid(lim, n_grid)
    g.imshow(gains.stability_region(grid, env), origin="lower", extent=(*lim, *lim),
             cmap=mpl.colors.ListedColormap(REGION_COLORS), vmin=-0.5, vmax=2.5,
             interpolation="nearest", aspect="equal")
    g.plot(*gains.lqr_feedback(env), "*", color=PALETTE["yellow"], mec="k", mew=0.5, ms=10,
           label="LQR")
    art = {}
    t = np.arange(T + 1)
    for name, h in runs.items():
        c = COLORS[name]
        g.plot(h.gains[:, 0], h.gains[:, 1], color=c, lw=0.6, alpha=0.35)
        art[f"trail_{name}"], = g.plot([], [], color=c, lw=1.2)
        art[f"dot_{name}"], = g.plot([], [], "o", color=c, mec="k", mew=0.5, ms=7,
                                     label=f"trained {name} loop")
        art[f"pos_{name}"], = ax["pos"].plot(t, np.zeros_like(t, float), color=c)
        art[f"u_{name}"], = ax["u"].plot(t, np.zeros_like(t, float), color=c)
    g.set(xlim=lim, ylim=lim, xlabel="$k_1$ (position gain)", ylabel="$k_2$ (velocity gain)")
    g.grid(False)
    g.legend(loc="lower left", fontsize=7, framealpha=0.8, frameon=True)
    for key, lab in (("pos", "position $x_1$"), ("u", "control $u$")):
        ax[key].set_yscale("symlog", linthresh=1.0)
        ax[key].set(ylim=(-top, top), ylabel=lab, xlim=(0, T))
    ax["pos"].tick_params(labelbottom=False)
    ax["pos"].set_title(f"from $x_0$ = ({x0[0]:g}, {x0[1]:g})")
    ax["u"].set_xlabel("time step t")

    def draw(epoch):
        g.set_title(f"gain space, epoch {epoch}")
        for name, h in runs.items():
            i = min(int(np.searchsorted(h.monitor_epoch, epoch)), len(h.monitor_epoch) - 1)
            art[f"trail_{name}"].set_data(h.gains[:i + 1, 0], h.gains[:i + 1, 1])
            art[f"dot_{name}"].set_data([h.gains[i, 0]], [h.gains[i, 1]])
            x1, u = traj[name][epoch]
            art[f"pos_{name}"].set_ydata(x1)
            art[f"u_{name}"].set_ydata(u)

    return _epoch_explorer(fig, draw, art, epochs, n_frames, include, "epoch of both trainings")


# -- Chapter 2 --------------------------------------------------------------------------------
def _stage1_network(s_zm: float, N: int, seed: int) -> RankOneAgent:
    """A rank-one network with z.m = s_zm and negligible u, v (the stage-1 regime)."""
    return RankOneAgent(N=N, seed=seed, s_zm0=torch.tensor(float(s_zm)), uv_scale=1e-3,
                        z_perp_scale=1e-3)


def stage1_explorer(env, T: int = 50, history=None, stages=None, *, N: int = 100,
                    seed: int = 0, s_zm: float | None = None, lr: float = 1e-2,
                    batch: int = 100, clip: float = 1.0, train_epochs: int = 200,
                    s_range=(-0.5, 0.3), n_frames: int = 17, horizon: int = 2,
                    background: bool = True) -> Explorer:
    """Chapter 2: the stage-1 explorer. Sliders for the feedback overlap s_zm and the horizon T
    move four panels at once:

    - eig(P) of a network with that s_zm and negligible u, v (dots) on the unit circle, with
      the stage-1 prediction 1 +/- sqrt(s_zm) (rings);
    - its rollout ||x_t|| from x_0 = (1, 1) over ``horizon`` x T steps (shaded: the horizon);
    - the exact expected loss against s_zm and the geometric-sum estimate, at this T;
    - a training run's loss with its stages shaded: ``history`` (the chapter's run) until the
      "train" button reruns a short training (``train_epochs``, learning rate, seed set
      beside it) from a network with s_zm(0) = the slider's value at the slider's T.

    The static form scrubs s_zm over ``s_range`` (``n_frames`` values, plus the chapter's
    s_zm(0)) at the chapter's T, with the chapter's run in the last panel.
    Introduced in Chapter 2, section "Explore stage 1".
    """
    from .stages import detect_stages
    from .training import train_closed_loop

    lo, hi = s_range
    if s_zm is None:
        s_zm = float(history.overlaps[0, 0]) if history is not None else 0.1
    grid = np.linspace(lo, hi, 61)
    x0 = torch.tensor([[1.0, 1.0]], dtype=env.dtype)
    cache = {}

    def curves(T):  # the loss curves and rollout limits depend on T only
        if T not in cache:
            sim = theory.stage1_simulated_loss(grid, env, T, N=N, seed=seed)
            est = theory.stage1_loss(grid, T)
            ends = torch.tensor([[s, 0.0, 0.0, 0.0] for s in (lo, 0.0, hi)], dtype=env.dtype)
            norm = coupled.effective_rollout(ends, env, x0, horizon * T)["x"].norm(dim=-1)
            cache[T] = (sim, est, (max(float(norm.min()), 1e-3) / 3, float(norm.max()) * 10))
        return cache[T]

    fig = Figure(figsize=(WIDTH, 5.6), layout="constrained")
    (a_eig, a_roll), (a_loss, a_train) = fig.subplots(2, 2)
    complex_plane(a_eig, ((-0.3, 1.9), (-0.9, 0.9)))
    art = {"eig": a_eig.scatter([], [], s=22, color=PALETTE["blue"], zorder=3,
                                label="eig($P$), simulated"),
           "theory_eig": a_eig.scatter([], [], s=70, facecolors="none", zorder=4,
                                       edgecolors=PALETTE["red"],
                                       label=r"$1 \pm \sqrt{s_{zm}}$ (stage-1 theory)")}
    a_eig.legend(loc="upper left", fontsize=7)
    art["rollout"], = a_roll.plot([], [], color=PALETTE["black"])
    a_roll.set(yscale="log", xlabel="time step t", ylabel=r"$\|x_t\|$ from $x_0 = (1, 1)$")
    art["sim"], = a_loss.plot([], [], color=PALETTE["black"], label="exact expected loss")
    art["est"], = a_loss.plot([], [], color=PALETTE["red"], ls="--",
                              label=r"$\frac{1}{2}\frac{1-r^{T+1}}{1-r}$")
    art["at"], = a_loss.plot([], [], "o", color=PALETTE["blue"], ms=5, zorder=4)
    art["vline"] = a_loss.axvline(s_zm, color=PALETTE["blue"], lw=0.8)
    a_loss.axvline(0, color="0.5", lw=0.6)
    a_loss.set(yscale="log", xlabel="$s_{zm}$", ylabel="loss", xlim=(lo, hi))
    a_loss.legend(loc="upper left", fontsize=7)
    sparse_log_ticks(a_roll, a_loss)
    span = [None]
    run = {"history": history, "stages": stages, "title": "the chapter's run"}

    def draw_training():
        a_train.clear()
        h = run["history"]
        if h is None:
            a_train.text(0.5, 0.5, "press train", ha="center", va="center",
                         transform=a_train.transAxes, color="0.4")
            a_train.set(xlabel="epoch + 1", ylabel="loss")
            return
        x = h.epoch + 1
        a_train.plot(x, h.loss, color=PALETTE["sky"], lw=0.8, label="batch loss")
        a_train.plot(x, h.expected_loss, color=PALETTE["black"], label="expected loss")
        a_train.set(xscale="log", yscale="log", xlabel="epoch + 1", ylabel="loss",
                    title=run["title"])
        shade_stages(a_train, run["stages"] or detect_stages(h), offset=1)
        sparse_log_ticks(a_train)
        a_train.legend(loc="lower left", fontsize=7)

    def draw(s_zm, T):
        sim, est, ylim = curves(T)
        net = _stage1_network(s_zm, N, seed)
        ev = coupled.spectrum(net, env).numpy()
        art["eig"].set_offsets(np.c_[ev.real, ev.imag])
        th = theory.stage1_eigenvalues(s_zm)
        art["theory_eig"].set_offsets(np.c_[th.real, th.imag])
        a_eig.set_title(f"s_zm = {s_zm:+.3f}:  \u03c1(P) = {np.abs(ev).max():.3f}")
        dist = coupled.effective_rollout(net.overlaps()[None], env, x0,
                                         horizon * T)["x"][:, 0, 0].norm(dim=-1).numpy()
        art["rollout"].set_data(np.arange(horizon * T + 1), np.maximum(dist, 1e-300))
        if span[0] is not None:
            span[0].remove()
        span[0] = a_roll.axvspan(0, T, color="0.9", lw=0, zorder=0)
        a_roll.set(xlim=(0, horizon * T), ylim=ylim, title=f"rollout (shaded: horizon T = {T})")
        art["sim"].set_data(grid, sim)
        art["est"].set_data(grid, est)
        with torch.no_grad():
            here = coupled.expected_loss(net, env, T).item()
        art["at"].set_data([s_zm], [here])
        art["vline"].set_xdata([s_zm, s_zm])
        a_loss.set_ylim(min(sim.min(), est.min()) / 3, max(sim.max(), est.max()) * 3)
        a_loss.set_title(f"stage-1 loss at T = {T}")

    draw_training()
    s_control = slider("$s_{zm}$", float(np.clip(s_zm, lo, hi)), min=lo, max=hi, step=0.005)
    T_control = slider("T", int(T), min=5, max=max(100, int(T)), step=5)
    lr_control = slider("lr", lr, min=1e-4, max=1e-1, log=True, step=0.25)
    seed_control = widgets.BoundedIntText(value=seed, min=0, max=10**6, description="seed",
                                          layout=widgets.Layout(width="10em"))
    epochs_control = slider("epochs", int(train_epochs), min=10, max=2000, step=10)

    def train(report):
        n = epochs_control.value
        agent = RankOneAgent(N=N, seed=seed_control.value,
                             s_zm0=torch.tensor(float(s_control.value)))
        h = train_closed_loop(agent, env, epochs=n, T=T_control.value, lr=lr_control.value,
                              batch=batch, clip=clip, seed=seed_control.value,
                              monitor=epoch_progress(n, report))
        return h

    def trained(h):
        with ex._lock:
            run.update(history=h, stages=detect_stages(h),
                       title=f"your run: $s_{{zm}}(0)$ = {s_control.value:+.3f}, "
                             f"T = {T_control.value}, lr = {lr_control.value:.2g}")
            draw_training()
        ex.refresh()

    trainer = Trainer(train, trained, description="train",
                      params=(lr_control, seed_control, epochs_control), background=background)
    values = sorted(set(np.round(np.linspace(lo, hi, n_frames), 4)) | {round(float(s_zm), 4)})
    frames = [{"s_zm": float(s), "T": int(T)} for s in values]
    ex = Explorer(fig, draw, {"s_zm": s_control, "T": T_control}, frames,
                  label=lambda v: f"s_zm = {v['s_zm']:+.3f}",
                  start=values.index(round(float(s_zm), 4)), actions=[trainer.widget],
                  name="feedback overlap s_zm",
                  note=f"T = {T}; run the notebook to change T and to retrain")
    ex.artists, ex.trainer = art, trainer
    return ex


# -- Chapter 4 --------------------------------------------------------------------------------
def tracking_explorer(history, like, plant, refs, phases, *, n_frames: int = MAX_FRAMES,
                      include=()) -> Explorer:
    """Chapter 4: an epoch slider over the recorded networks showing, at that epoch, the path
    of the point mass on the reference of ``phases`` (top left), eig(W - I)/tau against the
    target frequencies +/- omega_k (top right) and the four probe responses, one sinusoid at a
    time (bottom, with each probe's loss relative to its reference power).

    ``like``: the initial network (for W_in, dt, tau; the snapshots hold W and W_out). The
    static form shows ``n_frames`` recorded epochs and every epoch of ``include`` (e.g. the
    epochs at which each frequency was first learned). Introduced in Chapter 4, section
    "Explore the acquisitions".
    """
    from .figures.ch4 import FREQ_COLORS

    epochs = [int(e) for e in history.snapshot_epoch]
    example = refs.signal(phases[:1])
    zero = torch.zeros(1, refs.K)
    probes = torch.cat([refs.signal(zero, which=[k]) for k in range(refs.K)])
    sc = tracking.history_scoring(history, refs)
    pw = sc.power.numpy()
    omega = refs.omega.numpy()
    t = np.arange(refs.T + 1) * refs.dt
    cache = {}

    def state(epoch):
        if epoch not in cache:
            e_net, net = tracking.agent_at(history, epoch, like)
            with torch.no_grad():
                q = tracking.rollout(net, plant, example, sc.convention)["q"][0].numpy()
                qp = tracking.rollout(net, plant, probes, sc.convention)["q"].numpy()
            cache[epoch] = (e_net, q, qp)
        return cache[epoch]

    fig = Figure(figsize=(WIDTH, 5.4), layout="constrained")
    keys = [f"p{k}" for k in range(refs.K)]
    half = refs.K // 2
    ax = fig.subplot_mosaic([["plane"] * half + ["eig"] * (refs.K - half), keys],
                            height_ratios=[1.5, 1])
    r = example[0].numpy()
    art = {}
    ax["plane"].plot(r[:, 0], r[:, 1], color="0.2", ls="--", lw=0.9, label="reference")
    art["path"], = ax["plane"].plot([], [], color=PALETTE["blue"], lw=1.1, label="point mass")
    bound = plant.bound or 10.0
    ax["plane"].set(xlim=(-bound, bound), ylim=(-bound, bound), aspect="equal",
                    xlabel="x position", ylabel="y position")
    ax["plane"].legend(loc="upper left", fontsize=7)
    for k, w in enumerate(omega):
        for sign in (1, -1):
            ax["eig"].axhline(sign * w, color=FREQ_COLORS[k], ls="--", lw=0.8)
    art["eig"] = ax["eig"].scatter([], [], s=8, color="0.15", linewidths=0)
    ax["eig"].set(xlim=(-2.2, 0.6), ylim=(-3.0, 3.0), xlabel="Re (1/s)", ylabel="Im (rad/s)",
                  title="eig$(W - I)/\\tau$")
    for k in range(refs.K):
        a, axis = ax[keys[k]], refs.axes[k]
        a.plot(t, probes[k, :, axis].numpy(), color="0.3", ls="--", lw=0.7)
        art[f"probe{k}"], = a.plot(t, np.zeros_like(t), color=FREQ_COLORS[k], lw=1.0)
        art[f"probe_loss{k}"] = a.text(0.97, 0.04, "", transform=a.transAxes, ha="right",
                                       va="bottom", fontsize=7, color="0.3")
        a.set(ylim=(-5, 5), xlabel="time (s)", title=f"{refs.freqs[k]:g} Hz ({'xy'[axis]})")
        if k:
            a.tick_params(labelleft=False)
    ax[keys[0]].set_ylabel("probe position")

    def draw(epoch):
        e_net, q, qp = state(epoch)
        art["path"].set_data(q[:, 0], q[:, 2])
        ax["plane"].set_title(f"epoch {e_net}: tracking a test reference")
        i = min(int(np.searchsorted(history.eig_epoch, e_net)), len(history.eig_epoch) - 1)
        ev = history.eig_W[i]
        art["eig"].set_offsets(np.c_[ev.real, ev.imag])
        loss = tracking.probe_at(history, e_net) / pw
        for k in range(refs.K):
            art[f"probe{k}"].set_ydata(qp[k, :, 2 * refs.axes[k]])
            art[f"probe_loss{k}"].set_text(f"loss {loss[k]:.2f}")

    return _epoch_explorer(fig, draw, art, epochs, n_frames, include, "training epoch")


# -- Chapter 3 --------------------------------------------------------------------------------
def tradeoff_explorer(paths, h_T, T_values, h_full, h_reduced, betas) -> Explorer:
    """Chapter 3: three controls over precomputed runs. ``alpha`` picks a path of the
    alpha-model (``paths``, a ``reduced.AlphaPaths``; left), ``T`` a network trained from the
    same stage-2 start with that episode length (``h_T``, one member per ``T_values``;
    middle), ``beta`` a stage-3 run of the full network and of the paper's model
    (``h_full``, ``h_reduced``, one member per ``betas``; right: their losses).

    The other paths stay on the planes in grey, so a slider shows where its path lies in the
    fan. The static form steps through every alpha, then every T, then every beta. Introduced
    in Chapter 3, section "Explore the trade-off".
    """
    alphas = [float(a) for a in paths.alpha]
    T_values, betas = [int(T) for T in T_values], [float(b) for b in betas]
    lam_T = theory.labelled_roots(h_T.overlaps)[..., 0]
    near = np.concatenate([paths.lambda1.ravel(), lam_T.ravel()])
    near = near[np.abs(near) > 0.9]
    lo, hi = near.real.min() - 0.02, near.real.max() + 0.02
    top = near.imag.max() + 0.02

    fig = Figure(figsize=(WIDTH, 3.3), layout="constrained")
    a1, a2, a3 = fig.subplots(1, 3)
    art = {}
    for ax, lam, title in ((a1, paths.lambda1, "alpha-model"), (a2, lam_T, "networks, by T")):
        complex_plane(ax, ((lo, hi), (-0.01, top)))
        ax.set_aspect("auto")
        for k in range(lam.shape[1]):
            ax.plot(lam[:, k].real, lam[:, k].imag, color="0.82", lw=0.8)
        ax.plot(lam[0, 0].real, lam[0, 0].imag, "k*", ms=8)
        art[title], = ax.plot([], [], color=PALETTE["blue"], lw=1.6)
        ax.set_title(title)
    x = h_full.epoch + 1
    art["full"], = a3.plot(x, h_full.expected_loss[:, 0], color=PALETTE["black"], label="full")
    art["reduced"], = a3.plot(x, h_reduced.expected_loss[:, 0], color=PALETTE["orange"],
                              ls="--", label="the paper's model")
    losses = np.concatenate([h_full.expected_loss.ravel(), h_reduced.expected_loss.ravel()])
    a3.set(xscale="log", yscale="log", ylim=(losses.min() / 1.5, losses.max() * 1.5),
           xlabel="stage-3 epoch + 1", ylabel="expected loss")
    a3.legend(loc="lower left")

    def draw(alpha, T, beta):
        k = alphas.index(alpha)
        art["alpha-model"].set_data(paths.lambda1[:, k].real, paths.lambda1[:, k].imag)
        a1.set_title(f"alpha-model, $\\alpha$ = {alpha:g}: $|\\lambda_1|$ "
                     f"{abs(paths.lambda1[-1, k]):.3f}")
        j = T_values.index(T)
        art["networks, by T"].set_data(lam_T[:, j].real, lam_T[:, j].imag)
        a2.set_title(f"network, T = {T}: max $|\\lambda_1|$ {np.abs(lam_T[:, j]).max():.3f}")
        b = betas.index(beta)
        art["full"].set_ydata(h_full.expected_loss[:, b])
        art["reduced"].set_ydata(h_reduced.expected_loss[:, b])
        a3.set_title(f"stage 3, $\\beta$ = {beta:g}")

    mid = dict(alpha=alphas[len(alphas) // 2], T=T_values[len(T_values) // 2], beta=betas[0])
    frames = []
    for f in ([{**mid, "alpha": a} for a in alphas] + [{**mid, "T": T} for T in T_values]
              + [{**mid, "beta": b} for b in betas]):
        if f not in frames:  # the middle values occur in each sweep
            frames.append(f)
    controls = {"alpha": slider("alpha", mid["alpha"], options=alphas),
                "T": slider("T", mid["T"], options=T_values),
                "beta": selector("beta", betas)}
    ex = Explorer(fig, draw, controls, frames,
                  label=lambda v: f"alpha = {v['alpha']:g}, T = {v['T']}, beta = {v['beta']:g}",
                  start=0, name="alpha, then T, then beta",
                  note="the slider steps through every alpha, then every T, then every beta")
    ex.artists = art
    return ex


# -- Chapter 5 --------------------------------------------------------------------------------
def atlas_explorer(history, table, row: str = "T", col: str = "lr") -> Explorer:
    """Chapter 5: pick one cell of a sweep's (row, col) grid and see its runs: rho(P) of
    every seed against epoch (left, each run's stabilization epoch marked) and the final
    spectra in the complex plane (right). ``history`` comes from ``sweep.run`` with
    eigenvalue records, ``table`` from ``atlas.stage_table``. The static form steps through
    every cell, row by row. Introduced in Chapter 5, section "Explore the atlas".
    """
    from .sweep import coords_of

    c = coords_of(history)
    rows, cols = [v.item() for v in np.unique(c[row])], [v.item() for v in np.unique(c[col])]
    rho = np.asarray(history.spectral_radius, float)
    ep = np.asarray(history.eig_epoch) + 1
    final = np.asarray(history.eig_P)[-1]
    n_max = max(int(((c[row] == r) & (c[col] == q)).sum()) for r in rows for q in cols)

    fig = Figure(figsize=(WIDTH, 3.2), layout="constrained")
    a1, a2 = fig.subplots(1, 2, width_ratios=[1.6, 1])
    lines = [a1.plot([], [], lw=1.0, color=PALETTE["blue"], alpha=0.7)[0] for _ in range(n_max)]
    marks, = a1.plot([], [], "o", color=PALETTE["red"], ms=4, label="stabilization")
    a1.axhline(1.0, color="0.4", lw=0.8, ls="--")
    finite = rho[np.isfinite(rho) & (rho > 0)]
    a1.set(xscale="log", yscale="log", xlabel="epoch + 1", ylabel=r"$\rho(P)$",
           ylim=(finite.min() / 1.2, finite.max() * 1.2), xlim=(1, ep[-1]))
    a1.legend(loc="upper right")
    complex_plane(a2, ((-1.1, 1.1), (-1.1, 1.1)))
    dots = a2.scatter([], [], s=12, color=PALETTE["orange"])
    a2.set_title("final eig(P)")

    def draw(**values):
        m = (c[row] == values[row]) & (c[col] == values[col])
        idx = np.flatnonzero(m)
        for line, k in zip(lines, list(idx) + [None] * (n_max - len(idx))):
            line.set_data((ep, rho[:, k]) if k is not None else ([], []))
        stab = np.asarray(table["stabilization"], float)[idx]
        ok = np.isfinite(stab)
        marks.set_data(stab[ok] + 1, rho[np.searchsorted(ep - 1, stab[ok]), idx[ok]])
        ev = final[idx].ravel()
        dots.set_offsets(np.c_[ev.real, ev.imag] if ev.size else np.empty((0, 2)))
        a1.set_title(f"{row} = {values[row]:g}, {col} = {values[col]:g}: "
                     f"{int(ok.sum())} of {len(idx)} runs stabilized")

    controls = {row: slider(row, rows[len(rows) // 2], options=rows),
                col: slider(col, cols[len(cols) // 2], options=cols)}
    frames = [{row: r, col: q} for r in rows for q in cols]
    ex = Explorer(fig, draw, controls, frames,
                  label=lambda v: f"{row} = {v[row]:g}, {col} = {v[col]:g}",
                  start=frames.index({row: rows[len(rows) // 2], col: cols[len(cols) // 2]}),
                  name=f"{row} and {col}", note=f"the slider steps through every {col} "
                                                 f"for each {row}")
    ex.artists = {"lines": lines, "marks": marks, "dots": dots}
    return ex

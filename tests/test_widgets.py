"""The explorers of closedloop.widgets, built from tiny trainings and driven as a reader would."""

import io
import re
import threading

import matplotlib as mpl
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import PlaceHolderLayoutEngine
from PIL import Image

from closedloop import DoubleIntegrator, RankOneAgent, RNNAgent, UniformBox, gains, tracking
from closedloop import widgets
from closedloop.agents import make_generator
from closedloop.stages import detect_stages
from closedloop.training import train_closed_loop, train_open_loop

FRAME = re.compile(r'<img class="cl-frame" src="data:image/png;base64,[A-Za-z0-9+/=]+" '
                   r'data-label="([^"]*)" alt="[^"]*" style="([^"]*)">')


def check_static(ex):
    """The static form holds every frame as a PNG, one visible, and a slider over them."""
    html = ex.static_html()
    frames = FRAME.findall(html)
    assert len(frames) == len(ex.frames) == int(re.search(r'data-frames="(\d+)"', html)[1])
    assert sum("display:none" not in style for _, style in frames) == 1
    assert f'<input type="range" class="cl-explorer-slider" min="0" max="{len(ex.frames) - 1}"' \
        in html
    assert "oninput=" in html
    # offline: every src/href is inline data (searching the base64 itself for "http" could
    # match by chance)
    assert not re.search(r'(?:src|href)\s*=\s*["\'](?!data:)', html)
    labels = [lab for lab, _ in frames]
    assert len(set(labels)) == len(labels), "each frame is labelled by its own value"
    bundle = ex._repr_mimebundle_()
    assert bundle["text/html"] == html
    assert "application/vnd.jupyter.widget-view+json" in bundle
    return labels


# -- generic pieces ---------------------------------------------------------------------------
def test_pick_frames():
    available = np.arange(0, 1001, 10)
    got = widgets.pick_frames(available, 12, include=[333, None])
    assert len(got) == 12 and got == sorted(set(got)) and set(got) <= set(available.tolist())
    assert got[0] == 0 and got[-1] == 1000 and 330 in got
    assert sum(e < 100 for e in got) >= 3, "early epochs, where training moves fastest"
    assert widgets.pick_frames([5, 1, 3], 10) == [1, 3, 5]


def test_static_html_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="one label per frame"):
        widgets.static_html([b"png"], ["a", "b"], name="x")
    html = widgets.static_html([b"a", b"b", b"c"], ["1", "2", "3"], name="x", start=7)
    assert 'value="2"' in html  # start is clipped to the last frame


def _titled_figure(layout="constrained"):
    # 3.33 x 2.07 in: not a whole number of pixels at 80 dpi (Agg truncates)
    fig = Figure(figsize=(3.33, 2.07), layout=layout)
    ax = fig.subplots()
    ax.plot([0, 1, 2], [0, 1, 4], "o-")
    ax.set(title="a title", xlabel="x", ylabel="y")
    draws = []
    fig.canvas.mpl_connect("draw_event", lambda event: draws.append(1))
    return fig, draws


@pytest.mark.parametrize("style", ["matplotlib's defaults", "the book's style"])
def test_render_png_draws_a_frozen_figure_once_and_keeps_its_engine(style):
    """Also under the book's style, which turns constrained layout on in rcParams (taking
    the engine off then applied it again: the frames were drawn twice in the book)."""
    rc = {"figure.constrained_layout.use": style == "the book's style"}
    with mpl.rc_context(rc):
        _frozen_figure_draws_once()


def _frozen_figure_draws_once():
    fig, draws = _titled_figure()
    live = fig.get_layout_engine()
    widgets.render_png(fig)
    assert len(draws) == 2, "a live engine: savefig lays out, then draws"
    assert fig.get_layout_engine() is live
    fig.draw_without_rendering()
    fig.set_layout_engine("none")  # frozen, as an Explorer's figure
    frozen = fig.get_layout_engine()
    assert isinstance(frozen, PlaceHolderLayoutEngine)
    for colors in (None, 96):
        draws.clear()
        widgets.render_png(fig, 80, colors)
        assert len(draws) == 1 and fig.get_layout_engine() is frozen
    with pytest.raises(KeyError), widgets.single_draw(fig):
        assert fig.get_layout_engine() is None
        raise KeyError("a draw that fails")
    assert fig.get_layout_engine() is frozen


def test_render_png_palette_frame_is_the_quantized_png():
    fig, _ = _titled_figure(layout=None)
    full = Image.open(io.BytesIO(widgets.render_png(fig, 80))).convert("RGB")
    frame = Image.open(io.BytesIO(widgets.render_png(fig, 80, 96)))
    assert frame.mode == "P" and frame.size == full.size == (266, 165)
    expected = full.quantize(colors=96, method=Image.Quantize.FASTOCTREE).convert("RGB")
    np.testing.assert_array_equal(np.asarray(frame.convert("RGB")), np.asarray(expected))


def test_static_form_leaves_the_live_figure_as_it_was():
    fig = Figure(figsize=(3.33, 2.07), layout="constrained")
    ax = fig.subplots()
    (line,) = ax.plot([], [])
    ax.set(xlim=(0, 1), ylim=(0, 3))

    def draw(a):
        line.set_data([0, 1], [0, a])
        ax.set_title(f"a = {a}" + " (a long title)" * (a == 2))

    ex = widgets.Explorer(fig, draw, {"a": widgets.slider("a", 1, min=0, max=3)},
                          [{"a": 0}, {"a": 2}])
    engine, png = fig.get_layout_engine(), ex.image.value
    assert isinstance(engine, PlaceHolderLayoutEngine)
    assert isinstance(fig.canvas, FigureCanvasAgg)  # one renderer (and text cache) for all frames
    assert check_static(ex) == ["a = 0", "a = 2"]
    assert fig.get_layout_engine() is engine and ax.get_title() == "a = 1"
    ex.refresh()
    assert ex.image.value == png


def test_sliders_compute_once_per_release():
    for w in (widgets.slider("a", 0.5, min=0.0, max=1.0), widgets.slider("b", 3, min=0, max=9),
              widgets.slider("c", 1e-2, min=1e-4, max=1.0, log=True),
              widgets.slider("d", 20, options=[0, 10, 20])):
        assert w.continuous_update is False
    assert isinstance(widgets.slider("b", 3, min=0, max=9), widgets.widgets.IntSlider)


def test_trainer_cannot_be_double_started():
    release, calls, shown = threading.Event(), [], []

    def run(report):
        calls.append(1)
        for k in range(5):
            report(k / 4)
        assert release.wait(10)
        return "result"

    t = widgets.Trainer(run, shown.append)
    t.button.click()
    assert t.running and t.button.disabled
    t.button.click()  # while the first run waits: refused
    assert not t.start()
    assert t.started == 1 and "still training" in t.status.value
    release.set()
    t.join(10)
    assert calls == [1] and shown == ["result"] and not t.running
    assert t.progress.value == 100 and not t.button.disabled
    assert t.start()  # and it can run again
    t.join(10)
    assert t.started == 2 and shown == ["result", "result"]


def test_trainer_reports_errors():
    def fail(report):
        raise ValueError("bad lr")

    t = widgets.Trainer(fail, lambda r: None, background=False)
    t.start()
    assert isinstance(t.error, ValueError) and "bad lr" in t.status.value and not t.running


def test_epoch_progress_reaches_one(env):
    seen = []
    agent = RankOneAgent(N=6, seed=0)
    monitor = widgets.epoch_progress(9, seen.append)
    train_closed_loop(agent, env, epochs=9, T=5, batch=4, monitor=monitor)
    assert len(seen) == 10 and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)


# -- Chapter 2 --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stage1():
    env = DoubleIntegrator(UniformBox(2.0))
    h = train_closed_loop(RankOneAgent(N=12, seed=2), env, epochs=20, T=10, batch=8, seed=2)
    ex = widgets.stage1_explorer(env, 10, h, detect_stages(h), N=12, seed=2, n_frames=5,
                                 train_epochs=15, background=False)
    return env, h, ex


def test_stage1_explorer_follows_its_sliders(stage1):
    _, h, ex = stage1
    assert ex.values["s_zm"] == pytest.approx(float(h.overlaps[0, 0]), abs=5e-3)
    ex.set(s_zm=-0.3)
    eig = ex.artists["eig"].get_offsets().copy()
    roll = ex.artists["rollout"].get_ydata().copy()
    png = ex.image.value
    ex.set(s_zm=0.2)
    assert not np.allclose(ex.artists["eig"].get_offsets(), eig)
    assert ex.image.value != png
    # positive feedback: a real eigenvalue 1 + sqrt(0.2), and the theory rings sit on it
    ev = ex.artists["eig"].get_offsets()
    assert np.abs(ev[:, 0] - (1 + np.sqrt(0.2))).min() < 1e-2
    assert np.allclose(np.sort(ex.artists["theory_eig"].get_offsets()[:, 0]),
                       [1 - np.sqrt(0.2), 1 + np.sqrt(0.2)])
    assert ex.artists["rollout"].get_ydata()[-1] > roll[-1] * 10  # the runaway
    sim = ex.artists["sim"].get_ydata().copy()
    ex.set(T=30)
    assert len(ex.artists["rollout"].get_xdata()) == 2 * 30 + 1
    assert ex.artists["sim"].get_ydata().max() > sim.max()  # a longer horizon, larger loss


def test_stage1_explorer_static_form(stage1):
    ex = stage1[2]
    labels = check_static(ex)
    assert labels[0] == "s_zm = -0.500" and labels[-1] == "s_zm = +0.300"
    assert len(ex.frames) in (5, 6)  # the grid, and the chapter's s_zm(0) unless on it
    assert all(f["T"] == 10 for f in ex.frames)


def test_stage1_explorer_trains_at_the_chosen_values(stage1):
    ex = stage1[2]
    ex.set(s_zm=0.15, T=20)
    png = ex.image.value
    ex.trainer.start()
    assert ex.trainer.error is None, ex.trainer.error
    trained = ex.trainer.result
    assert trained.config["epochs"] == 15 and trained.config["T"] == 20
    assert float(trained.overlaps[0, 0]) == pytest.approx(0.15)
    assert ex.image.value != png
    assert ex.fig.axes[3].get_title().startswith("your run")


# -- Chapter 1 --------------------------------------------------------------------------------
def test_gain_space_explorer():
    env = DoubleIntegrator(UniformBox(1.0))
    probe = gains.probe(env, gains.fixed_starts(env, 6), 10)
    agent = RNNAgent(N=10, g=0.1, seed=0)
    student = agent.detached()
    kw = dict(epochs=12, T=10, batch=6, monitor=probe, snapshot_every=4)
    h_closed = train_closed_loop(agent, env, beta=0.005, **kw)
    h_open = train_open_loop(student, agent, env, **kw)
    ex = widgets.gain_space_explorer(h_closed, h_open, agent, env, T=10, n_grid=21,
                                     n_frames=3, include=[5])
    # no update at epoch 0 (the authors' runs): epoch 13 is the final network
    assert ex.controls["epoch"].options == (0, 4, 8, 12, 13)
    assert [f["epoch"] for f in ex.frames] == [0, 4, 13]  # first, last, and 5 snapped to 4
    ex.set(epoch=0)
    start = ex.artists["dot_closed"].get_xydata().copy()
    x1 = ex.artists["pos_open"].get_ydata().copy()
    ex.set(epoch=13)
    assert np.allclose(ex.artists["dot_closed"].get_xydata(), h_closed.gains[-1:])
    assert not np.allclose(ex.artists["dot_closed"].get_xydata(), start)
    assert not np.allclose(ex.artists["pos_open"].get_ydata(), x1)
    assert len(ex.artists["trail_open"].get_xdata()) == 14
    assert check_static(ex) == ["epoch 0", "epoch 4", "epoch 13"]


def test_gain_space_explorer_needs_snapshots(env):
    agent = RNNAgent(N=6, seed=0)
    h = train_closed_loop(agent, env, epochs=2, T=5, batch=2)
    with pytest.raises(ValueError, match="snapshot"):
        widgets.gain_space_explorer(h, h, agent, env, T=5)


# -- Chapter 4 --------------------------------------------------------------------------------
def test_tracking_explorer():
    plant, refs = tracking.PointMass(), tracking.Sinusoids(T=40)
    agent = tracking.TrackingRNN(N=8, seed=0)
    initial = agent.copy()
    h = tracking.train_tracking(agent, plant, refs, epochs=10, lr=1e-2, batch=4, n_test=4,
                                record_every=5)
    phases = refs.sample_phases(1, make_generator(1))
    ex = widgets.tracking_explorer(h, initial, plant, refs, phases, n_frames=2)
    assert ex.controls["epoch"].options == (0, 5, 10, 11)  # 10 updates: 12 rows
    ex.set(epoch=0)
    eig, path = ex.artists["eig"].get_offsets().copy(), ex.artists["path"].get_ydata().copy()
    probe = ex.artists["probe0"].get_ydata().copy()
    ex.set(epoch=11)  # the final network
    assert np.allclose(ex.artists["eig"].get_offsets()[:, 1], h.eig_W[-1].imag)
    assert not np.allclose(ex.artists["eig"].get_offsets(), eig)
    assert not np.allclose(ex.artists["path"].get_ydata(), path)
    assert not np.allclose(ex.artists["probe0"].get_ydata(), probe)
    assert check_static(ex) == ["epoch 0", "epoch 11"]


# -- Chapter 3 --------------------------------------------------------------------------------
def test_tradeoff_explorer():
    from closedloop.agents import OverlapAgent
    from closedloop.reduced import alpha_model
    from closedloop.training import sweep

    env = DoubleIntegrator()
    agent = RankOneAgent(N=10, seed=2, s_zm0=-0.05)
    paths = alpha_model(agent.overlaps().detach(), [0.0, 0.5, 1.0], steps=10)
    h_T = sweep("T", [5, 20], agent, env, epochs=4, batch=4)
    h_full = sweep("beta", [0.0, 2.0], agent, env, epochs=4, batch=4)
    h_red = sweep("beta", [0.0, 2.0], OverlapAgent.of(agent), env, epochs=4, batch=4)
    ex = widgets.tradeoff_explorer(paths, h_T, [5, 20], h_full, h_red, [0.0, 2.0])
    ex.set(alpha=0.0, T=5, beta=0.0)
    alpha_path = ex.artists["alpha-model"].get_xydata().copy()
    T_path = ex.artists["networks, by T"].get_xydata().copy()
    np.testing.assert_allclose(alpha_path[:, 1], paths.lambda1[:, 0].imag)
    ex.set(alpha=1.0)
    np.testing.assert_allclose(ex.artists["alpha-model"].get_ydata(), paths.lambda1[:, 2].imag)
    assert np.allclose(ex.artists["networks, by T"].get_xydata(), T_path)  # T did not move
    ex.set(T=20)
    assert not np.allclose(ex.artists["networks, by T"].get_xydata(), T_path)
    ex.set(beta=2.0)
    np.testing.assert_allclose(ex.artists["full"].get_ydata(), h_full.expected_loss[:, 1])
    np.testing.assert_allclose(ex.artists["reduced"].get_ydata(), h_red.expected_loss[:, 1])
    assert len(check_static(ex)) == 3 + 2 + 2 - 2  # the middle frame is not repeated

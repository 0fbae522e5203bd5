"""Every figure of every chapter redrawn from saved and loaded histories alone (issue 8), the
same as from the live runs."""

import inspect
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from closedloop import DoubleIntegrator, RankOneAgent, RNNAgent, UniformBox  # noqa: E402
from closedloop import coupled, gains, theory  # noqa: E402
from closedloop import tracking as tr  # noqa: E402
from closedloop.agents import make_generator  # noqa: E402
from closedloop.figures import ch1, ch2, ch4  # noqa: E402
from closedloop.stages import detect_stages  # noqa: E402
from closedloop.training import History, train_closed_loop, train_open_loop  # noqa: E402



def roundtrip(h: History, path: Path) -> History:
    h.save(path)
    return History.load(path)


# -- every figure of every chapter from saved histories ---------------------------------------
def figure_data(fig) -> list:
    """What a figure shows: line data, scatter offsets, images, texts and axis limits."""
    out = []
    for ax in fig.axes:
        out += [np.asarray(line.get_xydata()) for line in ax.lines]
        out += [np.asarray(c.get_offsets()) for c in ax.collections]
        out += [np.ma.filled(np.ma.asarray(im.get_array(), dtype=float), np.nan)
                for im in ax.images]
        out += [np.array([t.get_text() for t in ax.texts])]
        out += [np.array(ax.get_xlim()), np.array(ax.get_ylim())]
    return out


class Drawer:
    """Calls a chapter's figure functions, keeps what each figure shows, closes it."""

    def __init__(self, module):
        self.module, self.drawn = module, {}

    def __call__(self, name, *args, **kwargs):
        fig = getattr(self.module, name)(*args, **kwargs)
        self.drawn[name] = figure_data(fig)
        plt.close(fig)

    @staticmethod
    def figure_functions(module, extra=()):
        return {n for n, f in vars(module).items() if inspect.isfunction(f)
                and f.__module__ == module.__name__ and not n.startswith("_")} | set(extra)


def redraw_matches(module, runs, draw, tmp_path, extra=()):
    """Draw every figure from ``runs`` and from the same runs saved and loaded; compare."""
    loaded = {k: roundtrip(h, tmp_path / f"{k}.npz") for k, h in runs.items()}
    before, after = Drawer(module), Drawer(module)
    draw(runs, before, live=True)
    draw(loaded, after, live=False)
    assert set(after.drawn) == Drawer.figure_functions(module, extra), "a figure was skipped"
    for name in before.drawn:
        assert len(before.drawn[name]) == len(after.drawn[name]), name
        for x, y in zip(before.drawn[name], after.drawn[name]):
            np.testing.assert_array_equal(x, y, err_msg=name)


CH1 = dict(N=6, T=10, epochs=8, batch=5)


def test_chapter_1_figures_from_saved_histories(tmp_path):
    env = DoubleIntegrator(UniformBox(1.0))
    probe = gains.probe(env, gains.fixed_starts(env, 6), CH1["T"])
    agent = RNNAgent(N=CH1["N"], seed=0)
    student = agent.detached()
    kw = dict(epochs=CH1["epochs"], T=CH1["T"], batch=CH1["batch"], monitor=probe,
              snapshot_every=2)
    runs = {"closed": train_closed_loop(agent, env, beta=0.005, **kw),
            "open": train_open_loop(student, agent, env, **kw)}

    def draw(h, call, live):
        like = agent if live else RNNAgent(N=CH1["N"], seed=123)  # a template: type only
        closed, open_ = h["closed"], h["open"]
        stages = detect_stages(closed)
        rise = open_.test_loss / np.minimum.accumulate(open_.test_loss)
        peak = int(open_.monitor_epoch[int(np.argmax(rise))])
        epochs = CH1["epochs"]
        call("closed_loop_losses", closed, stages)
        call("open_loop_losses", open_, peak)
        call("test_losses", closed, open_, peak)
        call("gain_space", closed, open_, env, peak, T=CH1["T"], n=21, lim=(-1.8, 0.6))
        early = [0, max(1, stages.stage1_end or 1), stages.stabilization or epochs // 2, epochs]
        call("rollouts", closed, open_, like, env, sorted(set(early)), sorted({0, peak, epochs}),
             T=CH1["T"])
        call("final_spectra", closed, open_)
        call("ablation", {"reference": open_, "closed loop": closed}, env)

    redraw_matches(ch1, runs, draw, tmp_path)


def test_chapter_2_figures_from_saved_histories(tmp_path):
    env, N, T, epochs, batch = DoubleIntegrator(UniformBox(2.0)), 6, 20, 25, 10
    agent = RankOneAgent(N=N, seed=2)
    s_zm0 = np.linspace(-0.2, 0.2, 3)
    runs = {
        "history": train_closed_loop(agent, env, epochs=epochs, T=T, batch=batch, seed=2),
        "sweep": train_closed_loop(RankOneAgent(N=N, seed=2, s_zm0=torch.tensor(s_zm0),
                                                batch_shape=(3,)), env, epochs=epochs, T=T,
                                   batch=batch, seed=2),
        "exact": train_closed_loop(RankOneAgent(N=N, seed=2), env, epochs=epochs, T=T,
                                   mode="exact"),
    }
    x0 = env.sample_x0(20 * batch, make_generator(3))

    def final_batch_losses(history):
        """The chapter's batch losses of the final network, from its recorded overlaps."""
        out = coupled.effective_rollout(history.overlaps[-1], env, x0, T)
        return coupled.episode_cost(out["x"], out["u"], 0.0).reshape(20, batch).mean(-1)

    with torch.no_grad():  # the overlaps replay the trained network itself
        direct = coupled.closed_loop_loss(agent, env, x0.reshape(20, batch, 2), T)
    torch.testing.assert_close(final_batch_losses(runs["history"]), direct, rtol=1e-10, atol=0)

    def draw(h, call, live):
        history = h["history"]
        stages = detect_stages(history)
        call("loss_with_stages", history, stages)
        call("stage1_spectra", history, stages)
        call("runaway", history, stages, env, T, stages.representative_epochs())
        s_grid = np.linspace(-0.5, 0.3, 9)
        call("stage1_theory", s_grid, theory.stage1_simulated_loss(s_grid, env, T, N=N),
             theory.stage1_loss(s_grid, T), T)
        call("s_zm_sweep", h["sweep"], s_zm0, epochs=epochs)
        call("spectrum_path", history, stages)
        call("sampled_vs_exact", history, h["exact"], final_batch_losses(history).numpy(),
             float(history.expected_loss[-1]), batch)

    redraw_matches(ch2, runs, draw, tmp_path, extra=("sampled_vs_exact",))


def test_chapter_4_figures_from_saved_histories(tmp_path):
    plant, refs = tr.PointMass(), tr.Sinusoids(T=40)
    kw = dict(epochs=12, batch=4, n_test=3, record_every=4)
    agent = tr.TrackingRNN(N=6, seed=0)
    initial = agent.copy()
    runs = {"history": tr.train_tracking(agent, plant, refs, **kw)}
    runs["twin"] = tr.train_tracking(initial.copy(), plant, refs, teacher=agent, **kw)
    runs["other"] = tr.train_tracking(tr.TrackingRNN(N=6, seed=1), plant, refs, seed=1, **kw)
    runs["exact"] = tr.train_tracking(initial.copy(), plant, refs, mode="exact", **kw)

    def draw(h, call, live):
        history = h["history"]
        last = int(history.epoch[-1])
        final = agent if live else tr.agent_at(history, last)[1]
        first = initial if live else tr.agent_at(history, 0)[1]
        acquired = tr.acquisition_epochs(history, refs, 0.5, 5)
        learned = tr.acquisition_epochs(history, refs, 0.5, 5, first=True)
        other = tr.acquisition_epochs(h["other"], refs, 0.5, 5)
        norm = lambda ep: [None if e is None else e / last for e in ep]  # noqa: E731
        call("tracking_example", final, plant, refs, refs.sample_phases(1, make_generator(1)))
        call("loss_curves", history, h["twin"], refs.silent_losses().sum().item(), acquired)
        call("probe_losses", history, refs, 0.5, acquired, learned)
        call("probe_grid", history, first, plant, refs, learned)
        call("spectra", history, refs, learned)
        call("interference", history, refs, [0, 5, None, None], before=4, after=4)
        call("acquisition_vs_frequency", refs.freqs, tr.HUMAN_ACQUISITION, norm(acquired),
             norm(learned), [norm(other)])
        with torch.no_grad():
            resp = tr.linear_response(final, plant, refs)
            phases = refs.sample_phases(20 * 4, make_generator(2))
            batch_losses = resp.sampled_losses(phases).reshape(20, 4).mean(-1).numpy()
        call("exact_vs_sampled", history, h["exact"], batch_losses,
             resp.expected_loss().item(), 4)

    redraw_matches(ch4, runs, draw, tmp_path)
    rebuilt = tr.agent_at(History.load(tmp_path / "history.npz"), 13)[1]  # no update at 0
    for name in ("W", "W_in", "W_out"):
        assert torch.equal(getattr(rebuilt, name), getattr(agent, name).detach())

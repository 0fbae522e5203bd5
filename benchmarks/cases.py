"""What is timed: each case pairs the package's path with the same math written the usual way
(a per-time-step loop of small autograd ops), on the same network, batch and dtype."""

from __future__ import annotations

import torch

from closedloop import DoubleIntegrator, RankOneAgent, RNNAgent, UniformBox, coupled
from closedloop.training import train_closed_loop


def plain_closed_loop_loss(agent, env, x0, T, beta=0.0, window="from_x0"):
    """The closed loop as people usually write it: cost of (x_t, u_t), env step, network step,
    readout, one small autograd op at a time, for t = 0..T-1. The state cost counts x_t before
    each step (``"from_x0"``: x_0..x_{T-1}, the authors' window) or after it (``"after_x0"``:
    x_1..x_T). x0 (B, 2) -> the batch-mean cost, shape ``agent.batch_shape``. The fast paths
    are tested against this loop (tests/test_coupled.py), so the benchmark times the same math.
    """
    W, m, z = agent.recurrent_matrix(), agent.tensors["m"], agent.tensors["z"]
    x = x0.expand(*agent.batch_shape, *x0.shape)
    h = x.new_zeros(*x.shape[:-1], agent.N)
    u, cost = x.new_zeros(x.shape[:-1]), 0.0
    for _ in range(T):
        cost = cost + beta * u**2
        if window == "from_x0":
            cost = cost + (x**2).sum(-1) / (2 * T)
        x = x @ env.A.T + u[..., None] * env.B
        h = agent.phi(torch.einsum("...ij,...bj->...bi", W, h)
                      + (x @ env.C)[..., None] * m.unsqueeze(-2))
        u = (h * z.unsqueeze(-2)).sum(-1)
        if window == "after_x0":
            cost = cost + (x**2).sum(-1) / (2 * T)
    return cost.mean(-1)


def epoch_pair(kind: str, N: int = 100, T: int = 50, batch: int = 100, dtype=torch.float64):
    """(plain, fast) callables doing one epoch's forward + backward for ``kind``."""
    if kind == "rank_one":
        env = DoubleIntegrator(dtype=dtype)
        agent, beta = RankOneAgent(N=N, seed=0, dtype=dtype), 0.0
    elif kind == "tanh":
        env = DoubleIntegrator(UniformBox(1.0), dtype=dtype)
        agent, beta = RNNAgent(N=N, g=0.1, seed=0, dtype=dtype), 0.005
    else:
        raise ValueError(f"kind must be 'rank_one' or 'tanh', got {kind!r}")
    gen = torch.Generator().manual_seed(0)
    x0 = env.sample_x0(batch, gen)
    params = agent.parameters()

    def plain():
        torch.autograd.grad(plain_closed_loop_loss(agent, env, x0, T, beta), params)

    def fast():
        torch.autograd.grad(coupled.closed_loop_loss(agent, env, x0, T, beta), params)

    return plain, fast


def rank_one_paths(N: int = 100, T: int = 50, batch: int = 100):
    """The rank-one epoch (forward + backward) by each way of computing a linear closed loop:
    {'cost matrix': the package's (``closed_loop_loss``), 'states by doubling': every start's
    s_t = P_eff^t s_0 in O(log T) products (``start_costs``), 'fused step loop': the tanh
    network's loop run linearly on P_eff}."""
    from closedloop._loop import closed_loop

    env, agent = DoubleIntegrator(), RankOneAgent(N=N, seed=0)
    x0 = env.sample_x0(batch, torch.Generator().manual_seed(0))
    params = agent.parameters()
    s0 = torch.cat([x0, x0.new_zeros(batch, 2)], -1)

    def loop_loss():
        P, _ = coupled.linear_system(agent, env)
        x, _, u = closed_loop(P.transpose(-1, -2), s0, agent.overlaps()[:2], T, False, 2)
        return coupled.episode_cost(x, u, 0.0).mean()

    losses = {"cost matrix": lambda: coupled.closed_loop_loss(agent, env, x0, T),
              "states by doubling": lambda: coupled.start_costs(agent, env, x0, T).mean(),
              "fused step loop": loop_loss}
    return {name: (lambda f=f: torch.autograd.grad(f(), params)) for name, f in losses.items()}


def compiled_tanh(N: int = 100, T: int = 50, batch: int = 100):
    """One epoch (forward + backward) of the plain tanh loop under torch.compile; its first
    call compiles."""
    env = DoubleIntegrator(UniformBox(1.0))
    agent = RNNAgent(N=N, g=0.1, seed=0)
    x0 = env.sample_x0(batch, torch.Generator().manual_seed(0))
    params = agent.parameters()
    compiled = torch.compile(plain_closed_loop_loss)

    def epoch():
        torch.autograd.grad(compiled(agent, env, x0, T, 0.005), params)

    return epoch


def tanh_floor(N: int = 100, T: int = 50, batch: int = 100, dtype=torch.float64):
    """What no implementation of the tanh epoch can skip, alone: T products and tanh for the
    forward pass, T - 1 products for backpropagation through time and one for the gradient of
    W over all steps, on the stacked (2+N)-dim state, with the package's thread setting."""
    from closedloop._threads import loop_threads

    d, gen = N + 2, torch.Generator().manual_seed(0)
    S = torch.randn(T + 1, batch, d, generator=gen, dtype=dtype)
    G = torch.randn(T, batch, d, generator=gen, dtype=dtype)
    PT = torch.randn(d, d, generator=gen, dtype=dtype) / d**0.5
    states, grads = S.unbind(0), G.unbind(0)

    def floor():
        with loop_threads(batch * d * d):
            for t in range(T):
                torch.mm(states[t], PT, out=states[t + 1])
                states[t + 1].tanh_()
            for t in range(T - 1, 0, -1):
                grads[t - 1].addmm_(grads[t], PT)
        S[:-1].reshape(-1, d).T @ G.reshape(-1, d)

    return floor


def ensemble_pair(K: int = 10, epochs: int = 50, N: int = 100):
    """(sequential, ensemble): K rank-one trainings one after another, or as one ensemble."""
    env = DoubleIntegrator()

    def sequential():
        for k in range(K):
            train_closed_loop(RankOneAgent(N=N, seed=k), env, epochs=epochs, seed=k)

    def ensemble():
        agents = RankOneAgent.stack([RankOneAgent(N=N, seed=k) for k in range(K)])
        train_closed_loop(agents, env, epochs=epochs, seed=0)

    return sequential, ensemble


def tracking_pair(N: int = 100, batch: int = 100):
    """(plain, fast) forward + backward of one tracking epoch (T = 300, no clamp, so that
    both compute the same number): the stepped loop against the linear-response path."""
    from closedloop import tracking

    plant, refs = tracking.PointMass(bound=None), tracking.Sinusoids()
    agent = tracking.TrackingRNN(N=N, seed=0)
    phases = refs.sample_phases(batch, torch.Generator().manual_seed(0))
    params = agent.parameters()

    def plain():
        r = refs.signal(phases)
        loss = tracking.tracking_loss(tracking.rollout(agent, plant, r)["q"], r).mean()
        torch.autograd.grad(loss, params)

    def fast():
        torch.autograd.grad(tracking.sampled_losses(agent, plant, refs, phases).mean(), params)

    return plain, fast


def tracking_ensemble_pair(K: int = 3, epochs: int = 40, N: int = 100):
    """(sequential, ensemble): K tracking trainings (the paper's task, batch 100) one after
    another, or as one ensemble with one seed per member."""
    from closedloop import tracking

    plant, refs = tracking.PointMass(), tracking.Sinusoids()
    nets = [tracking.TrackingRNN(N=N, seed=k) for k in range(K)]

    def sequential():
        for k, net in enumerate(nets):
            tracking.train_tracking(net.copy(), plant, refs, epochs=epochs, seed=k)

    def ensemble():
        tracking.train_tracking(tracking.TrackingRNN.stack(nets), plant, refs, epochs=epochs,
                                seed=list(range(K)))

    return sequential, ensemble


def sweep_engines(n_workers: int = 2, chunks: int = 4, members: int = 4, epochs: int = 100):
    """(in-process, Dask LocalCluster of ``n_workers`` processes) callables running the same
    sweep of ``chunks`` chunks; the cluster is started once (its start-up is reported apart)
    and closed by the returned ``close``. Returns (inprocess, cluster, startup seconds, close).
    """
    import time

    import distributed

    from closedloop import sweep

    grid = {"seed": list(range(chunks * members)), "N": [100], "epochs": [epochs]}
    t = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                       processes=True, dashboard_address=None,
                                       env={"OMP_NUM_THREADS": "1"})
    client = distributed.Client(cluster)
    client.submit(sum, [1]).result()
    startup = time.perf_counter() - t

    def close():
        client.close()
        cluster.close()

    run = lambda engine: sweep.run(grid, chunk_size=members, engine=engine, progress=False)
    return (lambda: run("inprocess")), (lambda: run(client)), startup, close


def tanh_threads():
    """(one thread, the package's defaults): the same tanh epoch with torch set to one thread
    around it, and as the package runs it (the step loop chooses its threads)."""
    from closedloop._threads import single_thread

    _, fast = epoch_pair("tanh")

    def one():
        with single_thread():
            fast()

    return one, fast

"""What the tracking tests share: small networks, and the authors' episode and the book's
loss written out step by step (the references the package's engine is checked against)."""

import math

import torch

from closedloop import conventions
from closedloop import tracking as tr

PAPER, BOOK = conventions.PAPER_TRACKING, conventions.BOOK_TRACKING
GRID = [0, 0.5 * math.pi, math.pi, 1.5 * math.pi]  # over GRID^K every cross term cancels


def net(N=12, seed=0, g=0.2, out_scale=1.0):
    a = tr.TrackingRNN(N=N, g=g, seed=seed)
    return tr.TrackingRNN.from_tensors(a.W, a.W_in, out_scale * a.W_out)


def authors_loop(a, r, dt=0.1, bound=None):
    """The authors' episode as section 9 of the spec states it, written out step by step:
    for i = 0..T-1 the network reads (x_i, y_i, r_x(t_i), r_y(t_i)), h <- h + (dt/tau)(-h + W h
    + W_in in), u = W_out h moves the plant to q_{i+1}; the error is x_{i+1} - r(t_i), and the
    loss is sum_i dt (batch-mean x err^2 + batch-mean y err^2) / T, here per reference.
    r (T+1, B, 2), time first. Returns (positions x_1..x_T (T, B, 2), controls u_0..u_{T-1}
    (T, B, 2), losses (B,))."""
    W, W_in, W_out = (t.detach() for t in (a.W, a.W_in, a.W_out))
    T, B = r.shape[0] - 1, r.shape[1]
    x, v = torch.zeros(B, 2, dtype=r.dtype), torch.zeros(B, 2, dtype=r.dtype)
    h = torch.zeros(B, a.N, dtype=r.dtype)
    pos, us, loss = [], [], torch.zeros(B, dtype=r.dtype)
    for i in range(T):
        inp = torch.cat([x, r[i]], -1)
        h = h + (dt / a.tau) * (-h + h @ W.T + inp @ W_in.T)
        u = h @ W_out.T
        x, v = x + dt * v, v + dt * u                     # explicit Euler, both axes
        if bound is not None:
            x, v = x.clamp(-bound, bound), v.clamp(-bound, bound)
        err = x - r[i]
        loss = loss + dt * (err[:, 0] ** 2 + err[:, 1] ** 2)
        pos.append(x), us.append(u)
    return torch.stack(pos), torch.stack(us), loss / T


def book_loss(q, r):
    """The book's earlier scoring, written out: (1/T) sum_{t=1..T} ||p_t - r_t||^2, for q
    (T+1, B, 4) and r (T+1, B, 2)."""
    return ((q[1:, :, [0, 2]] - r[1:]) ** 2).sum(-1).mean(0)


def authors_loop_grad(a, r, dt=0.1):
    """``authors_loop``'s losses, differentiable in a.W and a.W_out."""
    T, B = r.shape[0] - 1, r.shape[1]
    x, v = torch.zeros(B, 2, dtype=r.dtype), torch.zeros(B, 2, dtype=r.dtype)
    h, loss = torch.zeros(B, a.N, dtype=r.dtype), 0.0
    for i in range(T):
        h = h + (dt / a.tau) * (-h + h @ a.W.T + torch.cat([x, r[i]], -1) @ a.W_in.T)
        x, v = x + dt * v, v + dt * (h @ a.W_out.T)
        loss = loss + dt * ((x - r[i]) ** 2).sum(-1)
    return loss / T

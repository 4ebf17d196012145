"""Builders for the digit pages 9 and 11 (no streamlit here).

`generate` draws a grid of class-conditional MNIST samples (rows = digits, columns = starting noises);
`compose` turns several prompts with weights into one denoiser, x0_u + sum_i w_i (x0_{c_i} - x0_u);
`compose_grid` samples from it, optionally beside each prompt on its own; `label_scores` uses the
conditional model as a classifier by its denoising error under every label; `tile` and `grid_figure`
lay a stack of images out as one heat map. Every function takes core objects and returns arrays or
plotly figures, so the pages stay thin and all of this is unit-tested.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch

from diffusion.parameterizations import append_dims, noise_level
from diffusion.samplers import guided, prior_sample, sample

from .figures import FONT, PALETTE
from .threads import all_cores, one_thread

NUM_DIGITS = 10
SIDE = 28
MAX_PER_DIGIT = 16
MAX_PROMPTS = 3


# --- checks -------------------------------------------------------------------------------------

def check_labels(labels) -> list[int | None]:
    """The digits asked for, as ints 0..9 (None: no label, the unconditional model); ValueError otherwise."""
    labels = list(labels)
    if not labels:
        raise ValueError("pick at least one digit (0-9) or 'no label'")
    out = []
    for lab in labels:
        if lab is None:
            out.append(None)
            continue
        if isinstance(lab, bool) or not isinstance(lab, (int, np.integer)) or not 0 <= int(lab) < NUM_DIGITS:
            raise ValueError(f"digit must be an integer from 0 to 9 (or 'no label'); got {lab!r}")
        out.append(int(lab))
    return out


def check_model(model) -> None:
    """Raise ValueError unless `model` is a 10-class image model (not, say, a 2-D toy model)."""
    base = getattr(model, "model", model)  # a Rescheduled wraps the trained model
    net = getattr(base, "net", None)
    if net is not None:
        from diffusion.unet import UNet

        if not isinstance(net, UNet):
            raise ValueError(f"this checkpoint holds a {type(net).__name__} (a model of 2-D points), not an MNIST "
                             "image model; the digit pages need checkpoints/mnist.safetensors (net.arch = unet)")
    classes = getattr(model, "num_classes", 0)
    if classes != NUM_DIGITS:
        raise ValueError(f"the digit pages need a model conditioned on the 10 digits; this one has {classes} classes")


def check_count(n, name: str = "samples per digit", hi: int = MAX_PER_DIGIT) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= int(n) <= hi:
        raise ValueError(f"{name} must be an integer from 1 to {hi}; got {n!r}")
    return int(n)


def _label_tensor(labels) -> torch.Tensor:
    """None -> -1 (the model's 'no label'), digits as they are."""
    return torch.tensor([-1 if lab is None else lab for lab in labels], dtype=torch.long)


def label_name(label) -> str:
    return "no label" if label is None else f"digit {label}"


# --- generation ---------------------------------------------------------------------------------

def _run(denoise, x, schedule, sampler, steps, seed, device):
    g = torch.Generator().manual_seed(int(seed) + 1)  # the sampler's own noise (DDPM, SDE)
    with all_cores(), torch.no_grad():
        out = sample(denoise, x.to(device), schedule, sampler, int(steps), generator=g)
    return out.detach().cpu().float()


def generate(model, schedule, digits, per_digit: int = 4, guidance: float = 0.0, sampler: str = "heun",
             steps: int = 10, seed: int = 0, device: str = "cpu", interval=None) -> np.ndarray:
    """Samples [len(digits), per_digit, 28, 28] in data units (about -1 paper, +1 ink).

    Row r is conditioned on digits[r] (None: unconditional) with classifier-free guidance weight
    `guidance`, applied only at log-SNRs inside `interval` when one is given; column j starts from the
    same noise in every row, so the rows differ only by the prompt.
    """
    digits = check_labels(digits)
    check_model(model)
    n = check_count(per_digit)
    x = prior_sample(schedule, (n, 1, SIDE, SIDE), seed=seed).repeat(len(digits), 1, 1, 1)
    labels = _label_tensor(digits).repeat_interleave(n)
    out = _run(guided(model, labels, guidance, interval), x, schedule, sampler, steps, seed, device)
    return out.reshape(len(digits), n, SIDE, SIDE).numpy()


def compose(model, prompts):
    """One denoiser from several prompts: x0_u + sum_i w_i (x0_{c_i} - x0_u).

    `prompts` is a list of (digit, weight): weight > 0 pulls towards the digit ("and"), < 0 pushes away
    from it ("not"). A weight may also be a [B] tensor, one per sample (0 skips that sample's call).
    All the model calls of one step go through the net as one batch. With a single prompt of weight w
    this is classifier-free guidance with weight w - 1.
    """
    if not prompts:
        raise ValueError("give at least one prompt (a digit and a weight)")
    labels = check_labels([c for c, _ in prompts])
    if None in labels:
        raise ValueError("every prompt needs a digit from 0 to 9")
    weights = []
    for _, w in prompts:
        w = torch.as_tensor(w, dtype=torch.float32)
        if not torch.isfinite(w).all():
            raise ValueError(f"prompt weights must be finite numbers; got {w.tolist()}")
        weights.append(w)

    def denoise(x, t):
        b = x.shape[0]
        xs, labs, picks = [x], [torch.full((b,), -1, dtype=torch.long)], []
        for c, w in zip(labels, weights):
            wb = w.expand(b).to(x)
            idx = torch.nonzero(wb != 0).flatten()
            xs.append(x[idx])
            labs.append(torch.full((len(idx),), c, dtype=torch.long))
            picks.append((idx, wb[idx]))
        out = model(torch.cat(xs), t, torch.cat(labs).to(x.device))
        x0_u = out[:b]
        x0 = x0_u.clone()
        at = b
        for idx, w in picks:
            k = len(idx)
            x0[idx] += append_dims(w, x.ndim) * (out[at:at + k] - x0_u[idx])
            at += k
        return x0

    return denoise


def guidance_sweep(model, schedule, digit: int, weights=(0.0, 1.0, 3.0, 6.0), n: int = 4, sampler: str = "heun",
                   steps: int = 10, seed: int = 0, device: str = "cpu") -> np.ndarray:
    """Samples [len(weights), n, 28, 28] of one digit, row r with guidance weight weights[r], all rows from the
    same n starting noises: row r equals generate(..., [digit], n, weights[r], ...), sampled as one batch."""
    (digit,) = check_labels([digit])
    if digit is None:
        raise ValueError("guidance needs a digit from 0 to 9 (without a label there is nothing to guide towards)")
    check_model(model)
    n = check_count(n)
    for w in weights:
        guided(model, digit, w)  # the core's own range check on each weight
    per = torch.tensor([1.0 + float(w) for w in weights]).repeat_interleave(n)  # guidance w = composition 1 + w
    x = prior_sample(schedule, (n, 1, SIDE, SIDE), seed=seed).repeat(len(weights), 1, 1, 1)
    out = _run(compose(model, [(digit, per)]), x, schedule, sampler, steps, seed, device)
    return out.reshape(len(weights), n, SIDE, SIDE).numpy()


def prompt_text(prompts) -> str:
    """'a 3 and an 8', 'a 7 but not a 1' (weights shown) for a list of (digit, weight)."""
    def a(c):
        return f"an {c}" if c == 8 else f"a {c}"

    pos = [f"{a(c)} (w = {w:g})" for c, w in prompts if w > 0]
    neg = [f"{a(c)} (w = {w:g})" for c, w in prompts if w < 0]
    text = " and ".join(pos) if pos else "anything"
    if neg:
        text += " but not " + " nor ".join(neg)
    return text


def compose_grid(model, schedule, prompts, n: int = 8, sampler: str = "heun", steps: int = 10, seed: int = 0,
                 alone: bool = False, device: str = "cpu") -> tuple[np.ndarray, list[str]]:
    """(images [R, n, 28, 28], row names): samples of the composed denoiser, and with `alone` first one row per
    prompt on its own (same weight, the others set to 0). Column j starts from the same noise in every row."""
    check_model(model)
    n = check_count(n, "samples", 32)
    prompts = [(c, float(w)) for c, w in prompts if float(w) != 0]
    if not prompts:
        raise ValueError("set at least one prompt weight to a value other than 0")
    rows = [[i] for i in range(len(prompts))] if alone and len(prompts) > 1 else []
    rows.append(list(range(len(prompts))))
    names = [prompt_text([prompts[i] for i in r]) for r in rows[:-1]]
    names.append("composed" if len(rows) == 1 else "all together")
    per = torch.tensor([[prompts[i][1] if i in r else 0.0 for i in range(len(prompts))] for r in rows])  # [R, K]
    weights = per.repeat_interleave(n, 0)  # [R n, K]
    denoise = compose(model, [(c, weights[:, i]) for i, (c, _) in enumerate(prompts)])
    x = prior_sample(schedule, (n, 1, SIDE, SIDE), seed=seed).repeat(len(rows), 1, 1, 1)
    out = _run(denoise, x, schedule, sampler, steps, seed, device)
    return out.reshape(len(rows), n, SIDE, SIDE).numpy(), names


# --- the generator as a classifier --------------------------------------------------------------

def shared_draws(schedule, n: int, seed: int = 0):
    """(t [n], eps [n, 1, 28, 28]): stratified times over the schedule's t_range and noises, shared by all labels
    so that label differences are not drowned by the noise of the draws."""
    g = torch.Generator().manual_seed(int(seed))
    lo, hi = schedule.t_range
    t = lo + (torch.arange(n, dtype=torch.float64) + torch.rand(n, generator=g, dtype=torch.float64)) / n * (hi - lo)
    eps = torch.randn((n, 1, SIDE, SIDE), generator=g)
    return t, eps


def label_scores(model, schedule, x0, n_draws: int = 24, seed: int = 0, device: str = "cpu",
                 show_logsnr: float = -2.0) -> dict:
    """Denoising errors of one image x0 [1, 28, 28] under every digit label.

    For shared draws (t_k, eps_k), x_k = alpha x0 + sigma eps_k, the model's guess x0_hat(x_k, t_k, c) for each
    label c is compared with the truth. Returns numpy arrays: 't' [n], 'x0' [10, n] (mean squared x0 error per
    pixel), 'eps' [10, n] (the same in noise units: (alpha / sigma)^2 times it), 'x0_err' and 'eps_err' [10] (their
    means over the draws) and 'guess_x0' / 'guess_eps' (the label with the least error); 'mid' [10, 28, 28]: the
    guesses at the draw whose log-SNR is nearest `show_logsnr` (noisy enough for the label to matter), and
    'mid_t' its time.
    """
    check_model(model)
    n = check_count(n_draws, "number of (t, noise) draws", 256)
    x0 = torch.as_tensor(x0, dtype=torch.float32).reshape(1, 1, SIDE, SIDE)
    t, eps = shared_draws(schedule, n, seed)
    lvl = noise_level(schedule, t)
    a, s = append_dims(lvl.alpha, 4).float(), append_dims(lvl.sigma, 4).float()
    xt = a * x0 + s * eps  # [n, 1, 28, 28]
    with one_thread(), torch.no_grad():
        xs = xt.repeat(NUM_DIGITS, 1, 1, 1).to(device)
        labels = torch.arange(NUM_DIGITS).repeat_interleave(n).to(device)
        x0_hat = model(xs, t.repeat(NUM_DIGITS), labels).detach().cpu().float().reshape(NUM_DIGITS, n, 1, SIDE, SIDE)
    err = ((x0_hat - x0) ** 2).mean(dim=(2, 3, 4))  # [10, n]
    snr = (lvl.alpha / lvl.sigma).float() ** 2
    err_eps = err * snr
    mid = int(torch.argmin((lvl.logsnr - show_logsnr).abs()))
    return scores_from(t.numpy(), err.numpy(), err_eps.numpy(), x0_hat[:, mid, 0].numpy(), float(t[mid]))


def scores_from(t, x0, eps, mid, mid_t: float) -> dict:
    """label_scores' dict from its per-draw errors x0, eps [10, n], the guesses `mid` and their time `mid_t`."""
    x0, eps = np.asarray(x0, dtype=np.float32), np.asarray(eps, dtype=np.float32)
    x0_err, eps_err = x0.mean(1), eps.mean(1)
    return {"t": np.asarray(t), "x0": x0, "eps": eps, "x0_err": x0_err, "eps_err": eps_err,
            "guess_x0": int(x0_err.argmin()), "guess_eps": int(eps_err.argmin()), "mid": np.asarray(mid),
            "mid_t": float(mid_t)}


STUB = 0.02  # the height of the best label's bar, as a share of the tallest bar: 0 would draw nothing


def scores_figure(errors, true_label: int | None, unit: str) -> go.Figure:
    """Bar chart of each label's mean denoising error above the best label's. The best label's bar (0 above
    itself) is drawn as a stub of STUB x the tallest bar so it can be seen; the true label is orange with a
    black outline; each bar is labelled with its value and with 'true' / 'best'."""
    errors = np.asarray(errors, dtype=float)
    extra = errors - errors.min()
    guess = int(errors.argmin())
    top = float(extra.max()) if extra.max() > 0 else 1.0
    shown = np.maximum(extra, STUB * top)
    colors = [PALETTE[1] if c == true_label else "#9a9a9a" for c in range(NUM_DIGITS)]
    outline = [2.5 if c == true_label else 0 for c in range(NUM_DIGITS)]
    tags = [", ".join(w for w, on in (("true", c == true_label), ("best", c == guess)) if on)
            for c in range(NUM_DIGITS)]
    text = [f"{tag}<br>+{e:.2g}" if tag else f"+{e:.2g}" for tag, e in zip(tags, extra)]
    fig = go.Figure(go.Bar(x=[str(c) for c in range(NUM_DIGITS)], y=shown, marker_color=colors,
                           marker_line=dict(color="black", width=outline), customdata=np.stack([errors, extra], 1),
                           text=text, textposition="outside", textfont=dict(size=14), constraintext="none",
                           cliponaxis=False,
                           hovertemplate="label %{x}<br>mean error %{customdata[0]:.4g}<br>above the best "
                                         "%{customdata[1]:.3g}<extra></extra>"))
    truth = "" if true_label is None else f" (true label: {true_label})"
    fig.update_layout(title=f"Best explained by label {guess}{truth}", font=FONT, height=440,
                      margin=dict(l=80, r=20, t=60, b=60), plot_bgcolor="white", showlegend=False,
                      xaxis=dict(title="label c (the prompt)", type="category"),
                      yaxis=dict(title=f"extra {unit} error per pixel", gridcolor="#e5e5e5",
                                 range=[0, 1.3 * top]))
    return fig

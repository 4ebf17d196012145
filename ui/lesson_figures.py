"""The lesson's figures: one per step, drawn by the pages' own builders (no Streamlit here beyond the shipped
model's loader, so the offline file's command builds the same figures without a server).

Every step shows the same data, two moons under the cosine schedule the shipped moons network was trained with,
so the figures tell one story; `build(step, value)` draws step `step` with its control at `value`.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch

from diffusion.models import oracle_model
from diffusion.schedules import SCHEDULES, make_schedule
from toy_data import get_dataset

from . import autoregressive, data, denoiser_field, dsm, energy, forward, guidance, posterior, reverse, score, targets
from .energy_maps import PATH as MAPS_PATH
from .energy_maps import load as load_maps
from .energy_maps import weights_fingerprint
from .figures import EXTENT, density_grid, forward_panels, view_half_width, view_scale
from .models import shipped
from .state import SCHEDULE_NAMES

DATASET = "moons"
SCHEDULE = "cosine:s=0.008"  # the shipped moons network's own schedule
N_POINTS = 400  # samples per panel on the prompt step
XT = (0.3, 1.5)  # the noisy point (in view-scale units) whose posterior and denoising targets the lesson follows
MAP_GRID, MAP_STEPS = 40, 16  # the Energy page's learned map: grid and ODE steps (as checkpoints/energy_maps.npz)


def dist():
    return get_dataset(DATASET)


def schedule():
    return make_schedule(SCHEDULE)


def model():
    """The shipped moons network (None when its checkpoint cannot be read: the steps then draw the exact side)."""
    return shipped(DATASET)[0]


def _alpha_sigma(t: float) -> tuple[float, float]:
    a, s = schedule().alpha_sigma(t)
    return float(a), float(s)


def _label(value) -> int | None:
    names = list(dist().label_names)
    return names.index(value) if value in names else None


# --- one builder per step -------------------------------------------------------------------------------------

def prompt(value):
    d, label = dist(), _label(value)
    xs, p, pc = data.density_grids(d, label)
    all_x, all_y = data.exact_samples(d, N_POINTS, None, 0)
    cond_x, cond_y = data.exact_samples(d, N_POINTS, label, 7919) if label is not None else (None, None)
    net, learned_x, learned_y = model(), None, None
    if net is not None:
        learned_x = data.learned_samples(net, schedule(), N_POINTS, label, seed=0)
        learned_y = d.nearest_label(torch.as_tensor(learned_x, dtype=torch.float64)).numpy()
    return data.prompt_figure(d, xs, p, pc, label, all_x, all_y, cond_x, cond_y, learned_x, learned_y)


def learned_map(t: float, net):
    """(xs, E) of the shipped network's energy at t: the shipped precomputed map when it matches, else solved now."""
    half = view_half_width(*_alpha_sigma(t))
    store, _ = load_maps(MAPS_PATH)
    if store is not None:
        hit = store.lookup(DATASET, weights_fingerprint(net), SCHEDULE, None, t, MAP_GRID, MAP_STEPS, half)
        if hit is not None:
            return hit[0], hit[1]
    return energy.learned_energy(net, t, None, MAP_GRID, half, MAP_STEPS)


def kl(value):
    """The exact energy at t beside the network's (on the network's grid), or alone without a network."""
    t, net = float(value), model()
    xs_l, E_l = learned_map(t, net) if net is not None else (None, None)
    half = view_half_width(*_alpha_sigma(t))
    xs, E = energy.exact_energy(dist(), *_alpha_sigma(t), None, MAP_GRID, half)
    return energy.energy_heatmaps(xs, E, xs_l, E_l, title_exact=f"Exact E = −log p_t, t = {t:.2f}",
                                  title_learned="Learned −log p_θ,t (normalised, via the ODE)")


def cost(value):
    return energy.cost_figure(int(value))


def chain(value):
    a, d = float(value), dist()
    return autoregressive.chain_rule_figure(autoregressive.curves(d, a), autoregressive.chain_rule_samples(d), a)


def score_field(value):
    frames = score.field_frames(dist(), schedule(), model(), None, score.FRAME_TS, n_arrows=15)
    return score.score_animation(frames, score.nearest_frame(score.FRAME_TS, float(value)))


def detour(value):
    return forward_panels(dist(), make_schedule(value), (0.0, 0.25, 0.5, 0.75, 1.0))


def noising(value):
    return forward.forward_animation(dist(), make_schedule(value), forward.FRAME_TS,
                                     active=forward.nearest_frame(forward.FRAME_TS, 0.0))


def snr(value):
    schedules = {name: make_schedule(name) for name in SCHEDULES}
    return forward.schedule_curves(schedules, "", float(value), names=SCHEDULE_NAMES)  # none bold: no sidebar here


def posterior_view(value):
    t, d = float(value), dist()
    a, s = _alpha_sigma(t)
    xt = np.array(XT) * view_scale(a, s)
    xs, log_p0 = posterior.clean_log_prob_grid(d)
    post = posterior.posterior_grid(d, xs, log_p0, a, s, xt)
    x_in = torch.tensor(xt[None], dtype=torch.float64)
    with torch.no_grad():
        exact_x0 = oracle_model(d, schedule())(x_in, t, None)[0].numpy()
        net = model()
        learned_x0 = None if net is None else net(x_in.float(), t, None)[0].double().numpy()
    return posterior.posterior_figure(xs, post, xt, a, s, exact_x0, learned_x0)


DSM_T = 0.5


def dsm_fan(value):
    n, d = int(value), dist()
    a, s = _alpha_sigma(DSM_T)
    xt = np.array(XT) * view_scale(a, s)
    fan = dsm.fan(d, a, s, xt)
    net, learned = model(), None
    if net is not None:
        with torch.no_grad():
            learned = net.score(torch.tensor(fan["xt"][None], dtype=torch.float32), DSM_T, None)[0].double().numpy()
    nx, pt = posterior.noisy_density(d, a, s, extent=posterior.PICK_RANGE * view_scale(a, s))
    return dsm.fan_figure(nx, pt, np.zeros((0, 2)), fan, n, s, learned, t=DSM_T)  # no grid: nothing to click


def three_targets(value):
    t, d, sch = float(value), dist(), schedule()
    lvl = targets.noise_at(sch, t)
    x0, eps = targets.draw_pair(d, 0)
    tg = targets.targets(x0, eps, lvl)
    net = model()
    exact = targets.predictions(oracle_model(d, sch), tg["x_t"], t, None, torch.float64)
    guess = None if net is None else targets.predictions(net, tg["x_t"], t, None)
    xs, ys, p = density_grid(d, 1.0, 0.0, n=90, extent=EXTENT)
    return targets.targets_figure(tg, targets.sample_path(sch, x0, eps), targets.is_vp(lvl), exact, guess, (xs, ys, p))


REVERSE_N = 600


def walk(value):
    steps, d, net = int(value), dist(), model()
    den = net if net is not None else oracle_model(d, schedule())
    ode = reverse.run(den, schedule(), "heun", steps, REVERSE_N, 1)
    sde = reverse.run(den, schedule(), "sde", steps, REVERSE_N, 1)
    return reverse.ode_sde_figure(d, ode, sde)


GUIDED_LABEL, GUIDED_N = 0, 2000


def guided(value):
    d, sch, net = dist(), schedule(), model()
    models = {"Exact": oracle_model(d, sch)}
    if net is not None:
        models["Learned"] = net
    report = guidance.guidance_report(d, sch, models, GUIDED_LABEL, float(value), GUIDED_N, seed=1)
    return guidance.guidance_figure(report)


def learned_field(value):
    d, sch = dist(), schedule()
    ts = denoiser_field.field_times(sch)
    points, exact, learned, p0 = denoiser_field.field_data(d, oracle_model(d, sch), model(), ts)
    active = int(np.argmin(np.abs(ts - float(value))))
    return denoiser_field.field_figure(points, exact, learned, ts, active, xs=np.linspace(-EXTENT, EXTENT, 70), p0=p0)


BUILDERS = {"prompt": prompt, "kl": kl, "energy": cost, "chain": chain, "score": score_field, "detour": detour,
            "forward": noising, "snr": snr, "posterior": posterior_view, "dsm": dsm_fan, "targets": three_targets,
            "reverse": walk, "guidance": guided, "learned": learned_field}


def build(step: str, value) -> go.Figure:
    """Step `step`'s figure with its control at `value`."""
    return BUILDERS[step](value)

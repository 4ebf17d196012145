"""Page 10: a digit's journey. One sample's film strip, a real digit noised to t and brought back, and many
reverse trajectories watched in the plane of the first two principal components of real digits."""

import streamlit as st

from ui.present import chart
from ui.state import view

v = view()

import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from functools import partial  # noqa: E402

from diffusion.grids import time_grid  # noqa: E402
from diffusion.samplers import Trajectory, guided, sample  # noqa: E402
from diffusion.schedules import make_schedule  # noqa: E402
from toy_data.mnist import MnistError, load_mnist  # noqa: E402
from ui import digit_presets  # noqa: E402
from ui.digit_rows import run_jobs, stored, warn_if_unusable  # noqa: E402
from ui.digit_runs import digit_trajectories, film_trajectory, noise_and_back, survival_at  # noqa: E402
from ui.films import film_strip, journey_animation  # noqa: E402
from ui.forward import pixel_power  # noqa: E402
from ui.images import fmt_lam, image_grid, normalised  # noqa: E402
from ui.page import digit_model, downloads, show_source  # noqa: E402
from ui.pca import fit_pca, pca_journey, project, project_trajectory  # noqa: E402
from ui.state import SAMPLER_NAMES, SCHEDULE_NAMES, bound  # noqa: E402
from ui.survival import (journey_from, mse, psnr, survival_figure, survival_from_rows, survival_sweep,  # noqa: E402
                         survival_ts)
from ui.threads import one_thread  # noqa: E402
from ui.workers import offload  # noqa: E402

N_PCA_FIT = digit_presets.PCA_FIT  # real test digits the PCA is fitted on and drawn as the cloud
N_PER_DIGIT = digit_presets.PCA_N_PER_DIGIT  # trajectories per digit in the PCA movie (100 in all)
PCA_STEPS = digit_presets.PCA_STEPS  # DDIM steps of those trajectories

st.title("10 · A digit's journey")
st.markdown(
    """
The digit model runs the same loop as the 2-D pages: start from noise, ask the network for its best guess
$\\hat x_0$ of the clean image, take a small step towards a slightly less noisy image that agrees with that
guess, and repeat. Here every point is a 28 × 28 image, so you can *look* at each step. Early on the guess is
a grey smudge (the average of every digit that could still be hiding in the noise); as the noise drains away
the guess commits to one shape, and the noisy image follows it.
"""
)
st.latex(r"x_t = \alpha_t\,x_0 + \sigma_t\,\varepsilon, \qquad \hat x_0 = \hat x_0(x_t, t, \text{digit}), \qquad "
         r"\lambda_t = \log\frac{\alpha_t^2}{\sigma_t^2}")

model, config, config_id = digit_model()  # says what is wrong (missing, corrupt, wrong kind) and stops the page
warn_if_unusable()
train = config.get("train", {})
st.caption(f"Digit model: {config.get('parameterization', '?')}-prediction U-Net trained for "
           f"{train.get('steps_done', '?')} steps on the {config.get('schedule', '?').split(':')[0]} schedule, used "
           f"here under the sidebar's {SCHEDULE_NAMES[v.schedule.name]} schedule (matched through log-SNR). "
           f"Sidebar: {SAMPLER_NAMES[v.sampler]}, {v.steps} steps, guidance w = {v.guidance:g}.")
schedule_spec = v.schedule.spec()


@st.cache_resource(show_spinner=False)
def _test_digits():
    return load_mnist("test")


try:
    test_images, test_labels = _test_digits()
except MnistError as e:
    st.error(f"The MNIST test digits could not be read: {e}")
    st.stop()


@st.cache_resource(show_spinner=False)
def _power(n: int) -> float:
    """E[x0^2] per pixel of the first n test digits (pixels in [-1, 1])."""
    return pixel_power(_test_digits()[0][:n])[0]


def _or_error(what: str, compute, *args):
    """compute(*args), or None after an error message naming what failed (a ValueError from bad settings)."""
    try:
        return compute(*args)
    except ValueError as e:
        st.error(f"{what} failed: {e}")
        return None


def _stored(kind, **args):
    return stored(model, config_id, schedule_spec, kind, **args)


# --- 1. film strip -----------------------------------------------------------------------------------

@st.cache_resource(show_spinner=False, max_entries=32)
def _film_live(model_key, spec, sampler, steps, digit, w, seed, device, _model):
    """(Trajectory, seconds), sampled in a worker process."""
    t0 = time.perf_counter()
    traj = offload(film_trajectory, _model, make_schedule(spec), sampler, steps, digit, w, seed, on=device)
    return traj, time.perf_counter() - t0


@st.cache_resource(show_spinner=False, max_entries=32)
def _film_figures(model_key, spec, sampler, steps, digit, w, seed, device, _traj):
    """`_traj` is the sample of the other arguments (from the presets, or `_film_live`'s)."""
    sched = make_schedule(spec)
    with one_thread():
        return film_strip(_traj, sched), journey_animation(_traj, sched)


def _film(sampler, steps, digit, w, seed, place):
    """(Trajectory, strip, movie, seconds or None when read from the presets), or None when stopped."""
    hit = _stored("film", digit=digit, w=float(w), sampler=sampler, steps=steps, seed=seed)
    if hit is not None:
        traj, seconds = Trajectory(torch.as_tensor(hit["ts"], dtype=torch.float64), torch.as_tensor(hit["xs"]),
                                   torch.as_tensor(hit["x0_hats"])), None
    else:
        call = (config_id, schedule_spec, sampler, steps, digit, w, seed, v.device)
        done, stopped = run_jobs([(repr(call), "one digit with all its steps", partial(_film_live, *call, model))],
                                 "journey.film.run", "samples", place)
        if stopped:
            return None
        traj, seconds = done[repr(call)]
    strip, movie = _film_figures(config_id, schedule_spec, sampler, steps, digit, w, seed, v.device, traj)
    return traj, strip, movie, seconds


st.header("1 · The film strip of one sample")
st.markdown(
    "Top row: the noisy image $x_t$ at eight of the sampler's steps (divided by $\\sqrt{\\alpha_t^2+\\sigma_t^2}$, "
    "the scale the network sees, so variance-exploding schedules stay visible). Bottom row: what the model "
    "predicts the finished digit will be from that $x_t$. Read it left to right: the prediction settles long "
    "before the noisy image looks like anything."
)


@st.fragment
def _film_section():
    c = st.columns([1, 1, 2])
    choice = bound(c[0].selectbox, "Digit to draw", ["any"] + [str(d) for d in range(10)], index=4,
                   key="journey.digit", help="'any': the unconditional model (no prompt, so no guidance).")
    seed = int(bound(c[1].number_input, "Noise seed", 0, 9999, 0, 1, key="journey.seed"))
    digit = None if choice == "any" else int(choice)
    w = v.guidance if digit is not None else 0.0
    try:
        got = _film(v.sampler, v.steps, digit, w, seed, c[2])
    except ValueError as e:
        st.error(f"Sampling failed: {e}")
        return
    if got is None:
        return
    traj, strip, movie, seconds = got
    when = "computed ahead of time" if seconds is None else f"sampled in {seconds:.2f} s (kept for everyone afterwards)"
    c[2].caption(f"{SAMPLER_NAMES[v.sampler]}, {v.steps} steps, w = {w:g}: {when}.")
    chart(strip, width="stretch", theme=None, key="journey.strip")
    downloads(strip, f"film-strip-{choice}-{v.sampler}", key="journey.dl.strip")
    st.subheader("Every step, as a movie")
    chart(movie, width="stretch", theme=None, key="journey.movie")
    st.caption("Press Play or drag the slider: all the steps are in your browser. Left: x_t (scaled); right: the "
               "model's x̂₀ at that step. The last frame is the finished sample.")
    downloads(movie, f"journey-{choice}-{v.sampler}", key="journey.dl.movie", gif=True)


_film_section()

# --- 2. noise a real digit to t and denoise it back -----------------------------------------------------

st.header("2 · Noise a real digit to t, then denoise it back")
st.markdown(
    "Take a real test digit, noise it to the sidebar's time $t$ with a fixed $\\varepsilon$, and hand the noisy "
    "image to the sampler as if it had got there itself: it runs from $t$ (not from pure noise) down to 0. "
    "At high log-SNR almost every pixel survives; somewhere around $\\lambda \\approx 0$ the model starts to "
    "*invent* (a plausible digit, but not necessarily this one); at very negative $\\lambda$ nothing of the "
    "original is left and the result is a fresh sample."
)
st.latex(r"\mathrm{MSE} = \tfrac{1}{784}\,\lVert \hat x - x_0\rVert^2, \qquad "
         r"\mathrm{PSNR} = 10\log_{10}\frac{2^2}{\mathrm{MSE}}\ \text{dB (pixels in } [-1, 1])")


@st.cache_resource(show_spinner=False, max_entries=256)
def _journey_live(model_key, spec, t, sampler, steps, index, label, w, device, _model):
    x0 = _test_digits()[0][index:index + 1]
    return offload(noise_and_back, _model, make_schedule(spec), x0, t, sampler, steps, label, w, on=device)


@st.cache_resource(show_spinner=False, max_entries=1024)
def _survival_live(model_key, spec, t, sampler, steps, index, label, w, device, _model):
    x0 = _test_digits()[0][index:index + 1]
    return offload(survival_at, _model, make_schedule(spec), x0, t, sampler, steps, label, w, on=device)


def _journey(t, sampler, steps, index, label, w, place):
    """(journey_from's dict at t, survival sweep dict) from the presets or live with progress; None if stopped."""
    sched = make_schedule(schedule_spec)
    r = _stored("back", index=index, label=label, w=float(w), t=t, sampler=sampler, steps=steps)
    sweep = _stored("survival", index=index, label=label, w=float(w), sampler=sampler, steps=steps)
    jobs = []
    if r is None:
        call = (config_id, schedule_spec, t, sampler, steps, index, label, w, v.device)
        jobs.append((repr(call), f"the digit from t = {t:.2f}", partial(_journey_live, *call, model)))
    if sweep is None:
        for ts in survival_ts(sched):
            call = (config_id, schedule_spec, float(ts), sampler, steps, index, label, w, v.device)
            jobs.append((repr(call), f"the digit from λ = {fmt_lam(sched.logsnr(float(ts)))}",
                         partial(_survival_live, *call, model)))
    done, stopped = run_jobs(jobs, "journey.back.run", "runs", place)
    if stopped:
        return None
    if r is None:
        r = done[jobs[0][0]]
        jobs = jobs[1:]
    else:
        x0 = test_images[index:index + 1]
        r = {k: torch.as_tensor(r[k]) for k in ("x_t", "x0_hat", "back")}
        for k in ("x0_hat", "back"):
            r[f"mse_{k}"] = mse(r[k], x0)
            r[f"psnr_{k}"] = psnr(r[f"mse_{k}"])
    if sweep is None:
        sweep = survival_from_rows([done[name] for name, _, _ in jobs])
    return r, {k: np.asarray(sweep[k], dtype=float) for k in ("t", "logsnr", "mse_x0_hat", "mse_back", "mse_noisy")}


@st.cache_resource(show_spinner=False, max_entries=256)
def _back_figures(model_key, spec, t, sampler, steps, index, label, w, device, _r, _sweep):
    """The four pictures (original, x_t, one-step x0_hat, denoised back) and the survival chart at this t.
    `_r` and `_sweep` are `_journey`'s results for the other arguments."""
    sched = make_schedule(spec)
    r, sweep = _r, _sweep
    test_x, test_y = _test_digits()
    n_steps = len(time_grid(sched, steps, t_start=t)) - 1
    images = np.stack([[test_x[index, 0].numpy(), normalised(r["x_t"][0, 0], sched, t).numpy(),
                        r["x0_hat"][0, 0].numpy(), r["back"][0, 0].numpy()]])
    titles = [[f"original (a {int(test_y[index])})", f"noised to t = {t:.2f}<br>λ = {fmt_lam(sched.logsnr(t))}",
               "one-step guess x̂₀", f"denoised back<br>({n_steps} {sampler} steps)"]]
    return (image_grid(images, titles, cell=220),
            survival_figure(sweep, sched, t, r, SCHEDULE_NAMES[sched.name]))


@st.fragment
def _noise_section():
    c = st.columns([2, 1])
    index = int(bound(c[0].slider, "Test image # (of the 10,000 MNIST test images)", 0, len(test_images) - 1, 0,
                      key="journey.index"))
    use_label = bound(c[1].checkbox, "Tell the model which digit it is", False, key="journey.label",
                              help="Off: the unconditional model must recognise the digit from what survives. "
                                   "On: it is prompted with the true label (and the sidebar's guidance w).")
    true = int(test_labels[index])
    label = true if use_label else None
    w = v.guidance if use_label else 0.0
    t = float(v.schedule.clamp(v.t))
    t = round(t, 6)
    got = _or_error("Denoising", _journey, t, v.sampler, v.steps, index, label, w, st.container())
    if got is None:
        return
    r, sweep = got
    alpha, sigma = (float(a) for a in v.schedule.alpha_sigma(t))
    x0 = test_images[index]
    fig, surv = _back_figures(config_id, schedule_spec, t, v.sampler, v.steps, index, label, w, v.device, r, sweep)
    left, right = st.columns([3, 2])
    with left:
        chart(fig, width="stretch", theme=None, key="journey.back")
    with right:
        m = st.columns(2)
        m[0].metric("One step: MSE", f"{r['mse_x0_hat']:.4f}")
        m[1].metric("One step: PSNR", f"{r['psnr_x0_hat']:.1f} dB")
        m = st.columns(2)
        m[0].metric("Denoised back: MSE", f"{r['mse_back']:.4f}")
        m[1].metric("Denoised back: PSNR", f"{r['psnr_back']:.1f} dB")
        power = _power(len(test_images))
        st.caption(f"α = {alpha:.3f}, σ = {sigma:.3g}: SNR = α²/σ² = {alpha**2 / sigma**2:.3g}, the ratio of the "
                   "scale factors of the image and of the noise. The powers themselves also depend on the image: "
                   f"MNIST pixels in [−1, 1] have E[x₀²] = {power:.3f} (most of it the paper, −1), so the image "
                   f"carries α² E[x₀²] = {alpha**2 * power:.3g} against the noise's σ² = {sigma**2:.3g}, "
                   f"{100 * alpha**2 * power / (alpha**2 * power + sigma**2):.1f}% of the noisy image's power. "
                   "MSE 0 is a perfect copy; for scale, a blank page against this digit scores "
                   f"{mse(torch.full_like(x0, -1.0), x0):.2f}.")
    downloads(fig, f"noise-and-back-{index}-t{t:.2f}", key="journey.dl.back")
    chart(surv, width="stretch", theme=None, key="journey.survival")
    st.caption(f"The same digit and the same ε noised to {len(sweep['t'])} log-SNR values and denoised back with "
               f"{SAMPLER_NAMES[v.sampler]} (big dots: the sidebar's t). The dashed line is the noisy image itself, "
               "divided by α: the denoised image keeps its error far below it. Right: where the "
               "schedule puts each λ in time; change the sidebar's schedule and the left curve barely moves, "
               "because what survives depends on λ, not on t.")
    downloads(surv, f"survival-{index}", key="journey.dl.survival")


_noise_section()

# --- 3. many trajectories in PCA coordinates -------------------------------------------------------------

st.header("3 · A hundred journeys at once")
st.markdown(
    f"""
Each image is a point in 784 dimensions. Flatten {N_PCA_FIT:,} real test digits and fit a PCA: its first two
principal components are the two directions along which real digits vary most, and the faint coloured cloud
is those digits projected onto them. Then draw {N_PER_DIGIT * 10} samples ({N_PER_DIGIT} of each digit, DDIM with
{PCA_STEPS} steps, the sidebar's schedule and guidance) and project every step of every sample the same way.
"""
)
st.latex(r"z = W^\top\,(x - \bar x_{\text{data}}), \qquad W \in \mathbb{R}^{784\times 2}\ \text{(the top two "
         r"principal directions)}")


@st.cache_resource(show_spinner=False)
def _pca(n):
    test_x, test_y = _test_digits()
    with one_thread():
        pca = fit_pca(test_x[:n])
        return pca, project(pca, test_x[:n]), test_y[:n].numpy()


@st.cache_resource(show_spinner=False, max_entries=128)
def _digit_paths(model_key, spec, w, digit, seed, device, _model):
    """(paths of x_t [S+1, N_PER_DIGIT, 2], of x0_hat, ts, seconds) of one digit's samples, sampled in a worker."""
    sched = make_schedule(spec)
    t0 = time.perf_counter()
    traj = offload(digit_trajectories, _model, sched, w, digit, N_PER_DIGIT, PCA_STEPS, seed, on=device)
    seconds = time.perf_counter() - t0
    pca, _, _ = _pca(N_PCA_FIT)
    with one_thread():
        return (project_trajectory(pca, traj, sched, "x_t"), project_trajectory(pca, traj, sched, "x0_hat"),
                traj.ts.numpy(), seconds)


@st.cache_resource(show_spinner=False, max_entries=16)
def _pca_figure(model_key, spec, w, what, device, _cloud, _paths, _labels, _ts):
    """The movie of `_pca_movie`'s arrays for the other arguments."""
    return pca_journey(_cloud, _test_digits()[1][:N_PCA_FIT].numpy(), _paths, _labels, _ts, make_schedule(spec), what=what)


def _pca_movie(w, what, place):
    """(figure, seconds or None when read from the presets), or None when stopped."""
    hit = _stored("pca", w=float(w), per_digit=N_PER_DIGIT, steps=PCA_STEPS, seed=0, fit=N_PCA_FIT)
    if hit is not None:
        cloud, paths, labels, ts, seconds = hit["cloud"], hit[what], hit["labels"].astype(int), hit["ts"], None
    else:
        calls = [(config_id, schedule_spec, w, d, 0, v.device) for d in range(10)]
        done, stopped = run_jobs([(repr(c), f"{N_PER_DIGIT} journeys of digit {c[3]}", partial(_digit_paths, *c, model))
                                  for c in calls], "journey.pca.run", "digits", place)
        if stopped:
            return None
        parts = [done[repr(c)] for c in calls]
        cloud = _pca(N_PCA_FIT)[1]
        paths = np.concatenate([p[0 if what == "x_t" else 1] for p in parts], 1)
        labels, ts = np.repeat(np.arange(10), N_PER_DIGIT), parts[0][2]
        seconds = sum(p[3] for p in parts)
    return _pca_figure(config_id, schedule_spec, w, what, v.device, cloud, paths, labels, ts), seconds


@st.fragment
def _pca_section():
    what = bound(st.radio, "What each particle shows", ["x_t", "x0_hat"], horizontal=True, key="journey.pca_what",
                 captions=["the noisy image x_t / √(α² + σ²)", "the model's guess x̂₀"])
    got = _or_error("Sampling", _pca_movie, v.guidance, what, st.container())
    if got is None:
        return
    fig, seconds = got
    chart(fig, width="stretch", theme=None, key="journey.pca")
    when = "computed ahead of time" if seconds is None else f"sampled in {seconds:.1f} s, then kept"
    st.caption(
        f"{N_PER_DIGIT * 10} samples, DDIM with {PCA_STEPS} steps ({when}). Press Play: "
        "every frame is in your browser. The movie opens on the finished samples; drag it back to step 0.")
    downloads(fig, f"pca-journeys-{what}", key="journey.dl.pca", gif=True)
    st.markdown(
        "**Why x_t divided by √(α² + σ²)?** That is exactly what the network is fed. At the start it is pure noise: "
        "a random direction in 784 dimensions has almost nothing along any two chosen axes, so every particle "
        "begins in one tight blob around the projection of x = 0 (a flat mid-grey image), which lies "
        "off-centre because the PCA is centred on the average digit. Dividing by α instead would blow the start "
        "up by as much as e⁵ ≈ 150 times and squash the clusters to a dot. The particles then fan out towards where "
        "real digits of their class lie; two axes cannot separate ten classes, so some (0 and 1 most clearly) end in "
        "regions of their own while others overlap in the middle, as the real digits do. Switch to **x̂₀** to see the "
        "guesses instead: they start at the average digit and split by class much earlier than x_t does."
    )


_pca_section()

show_source(time_grid, journey_from, survival_sweep, fit_pca, project_trajectory,
            sample, guided)

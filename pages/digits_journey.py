"""Page 10: a digit's journey. One sample's film strip, a real digit noised to t and brought back, and many
reverse trajectories watched in the plane of the first two principal components of real digits."""

import streamlit as st

from ui.state import view

v = view()

import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from diffusion.models import reschedule  # noqa: E402
from diffusion.samplers import guided, prior_sample, sample  # noqa: E402
from diffusion.schedules import make_schedule  # noqa: E402
from toy_data.mnist import MnistError, load_mnist  # noqa: E402
from ui import digits_journey as dj  # noqa: E402
from ui.page import digit_model, downloads, show_source  # noqa: E402
from ui.state import SAMPLER_NAMES, SCHEDULE_NAMES  # noqa: E402
from ui.threads import one_thread  # noqa: E402

N_PCA_FIT = 2000  # real test digits the PCA is fitted on and drawn as the cloud
N_PER_DIGIT = 10  # trajectories per digit in the PCA movie (100 in all)
PCA_STEPS = 20  # DDIM steps of those trajectories

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

model, config, _ = digit_model()  # says what is wrong (missing, corrupt, wrong kind) and stops the page
train = config.get("train", {})
MODEL_KEY = f"mnist:{train.get('steps_done')}:{train.get('seconds')}"
st.caption(f"Digit model: {config.get('parameterization', '?')}-prediction U-Net trained for "
           f"{train.get('steps_done', '?')} steps on the {config.get('schedule', '?').split(':')[0]} schedule, used "
           f"here under the sidebar's {SCHEDULE_NAMES[v.schedule.name]} schedule (matched through log-SNR). "
           f"Sidebar: {SAMPLER_NAMES[v.sampler]}, {v.steps} steps, guidance w = {v.guidance:g}.")
SPEC = v.schedule.spec()


@st.cache_resource(show_spinner=False)
def _test_digits():
    return load_mnist("test")


try:
    TEST_X, TEST_Y = _test_digits()
except MnistError as e:
    st.error(f"The MNIST test digits could not be read: {e}")
    st.stop()


def _denoiser(_model, spec, label, w):
    return guided(reschedule(_model, make_schedule(spec)), label, w)


# --- 1. film strip -----------------------------------------------------------------------------------

@st.cache_resource(show_spinner="Sampling one digit...", max_entries=32)
def _film(model_key, spec, sampler, steps, digit, w, seed, _model):
    sched = make_schedule(spec)
    with one_thread():
        g = torch.Generator().manual_seed(int(seed))
        x = prior_sample(sched, (1, 1, 28, 28), generator=g)
        t0 = time.perf_counter()
        traj = sample(_denoiser(_model, spec, digit, w), x, sched, sampler, steps, generator=g, return_trajectory=True)
        seconds = time.perf_counter() - t0
        return traj, dj.film_strip(traj, sched), dj.journey_animation(traj, sched), seconds


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
    choice = c[0].selectbox("Digit to draw", ["any"] + [str(d) for d in range(10)], index=4, key="journey.digit",
                            help="'any': the unconditional model (no prompt, so no guidance).")
    seed = int(c[1].number_input("Noise seed", 0, 9999, 0, 1, key="journey.seed"))
    digit = None if choice == "any" else int(choice)
    w = v.guidance if digit is not None else 0.0
    try:
        traj, strip, movie, seconds = _film(MODEL_KEY, SPEC, v.sampler, v.steps, digit, w, seed, model)
    except ValueError as e:
        st.error(f"Sampling failed: {e}")
        return
    c[2].caption(f"{SAMPLER_NAMES[v.sampler]}, {v.steps} steps, w = {w:g}: sampled in {seconds:.2f} s "
                 "(cached afterwards).")
    st.plotly_chart(strip, width="stretch", theme=None, key="journey.strip")
    downloads(strip, f"film-strip-{choice}-{v.sampler}", key="journey.dl.strip")
    st.subheader("Every step, as a movie")
    st.plotly_chart(movie, width="stretch", theme=None, key="journey.movie")
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
def _journey(model_key, spec, t, sampler, steps, index, label, w, _model):
    with one_thread():
        x0 = TEST_X[index:index + 1]
        return dj.journey_from(_denoiser(_model, spec, label, w), x0, make_schedule(spec), t, sampler, steps)


@st.cache_resource(show_spinner="Noising and denoising at 13 log-SNR values (once per digit and sampler)...",
                   max_entries=32)
def _sweep(model_key, spec, sampler, steps, index, label, w, _model):
    sched = make_schedule(spec)
    with one_thread():
        x0 = TEST_X[index:index + 1]
        return dj.survival_sweep(_denoiser(_model, spec, label, w), x0, sched, sampler, steps, dj.survival_ts(sched))


@st.cache_resource(show_spinner=False, max_entries=256)
def _back_figures(model_key, spec, t, sampler, steps, index, label, w, _model):
    """The four pictures (original, x_t, one-step x0_hat, denoised back) and the survival chart at this t."""
    sched = make_schedule(spec)
    r = _journey(model_key, spec, t, sampler, steps, index, label, w, _model)
    sweep = _sweep(model_key, spec, sampler, steps, index, label, w, _model)
    n_steps = len(dj.sub_grid(sched, t, steps)) - 1
    images = np.stack([[TEST_X[index, 0].numpy(), dj.normalised(r["x_t"][0, 0], sched, t).numpy(),
                        r["x0_hat"][0, 0].numpy(), r["back"][0, 0].numpy()]])
    titles = [[f"original (a {int(TEST_Y[index])})", f"noised to t = {t:.2f}<br>λ = {dj.fmt_lam(sched.logsnr(t))}",
               "one-step guess x̂₀", f"denoised back<br>({n_steps} {sampler} steps)"]]
    return (dj.image_grid(images, titles, cell=220),
            dj.survival_figure(sweep, sched, t, r, SCHEDULE_NAMES[sched.name]))


@st.fragment
def _noise_section():
    c = st.columns([2, 1])
    index = int(c[0].slider("Test digit (index in the 10,000 MNIST test images)", 0, len(TEST_X) - 1, 0,
                            key="journey.index"))
    use_label = c[1].checkbox("Tell the model which digit it is", False, key="journey.label",
                              help="Off: the unconditional model must recognise the digit from what survives. "
                                   "On: it is prompted with the true label (and the sidebar's guidance w).")
    true = int(TEST_Y[index])
    label = true if use_label else None
    w = v.guidance if use_label else 0.0
    t = float(v.schedule.clamp(v.t))
    try:
        r = _journey(MODEL_KEY, SPEC, round(t, 6), v.sampler, v.steps, index, label, w, model)
        sweep = _sweep(MODEL_KEY, SPEC, v.sampler, v.steps, index, label, w, model)
    except ValueError as e:
        st.error(f"Denoising failed: {e}")
        return
    alpha, sigma = (float(a) for a in v.schedule.alpha_sigma(t))
    x0 = TEST_X[index]
    fig, surv = _back_figures(MODEL_KEY, SPEC, round(t, 6), v.sampler, v.steps, index, label, w, model)
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(fig, width="stretch", theme=None, key="journey.back")
    with right:
        m = st.columns(2)
        m[0].metric("One step: MSE", f"{r['mse_x0_hat']:.4f}")
        m[1].metric("One step: PSNR", f"{r['psnr_x0_hat']:.1f} dB")
        m = st.columns(2)
        m[0].metric("Denoised back: MSE", f"{r['mse_back']:.4f}")
        m[1].metric("Denoised back: PSNR", f"{r['psnr_back']:.1f} dB")
        st.caption(f"α = {alpha:.3f}, σ = {sigma:.3g}: the noisy image is {100 * alpha**2 / (alpha**2 + sigma**2):.1f}% "
                   "signal by power. MSE 0 is a perfect copy; for scale, a blank page against this digit scores "
                   f"{dj.mse(torch.full_like(x0, -1.0), x0):.2f}.")
    downloads(fig, f"noise-and-back-{index}-t{t:.2f}", key="journey.dl.back")
    st.plotly_chart(surv, width="stretch", theme=None, key="journey.survival")
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


@st.cache_resource(show_spinner="Fitting the PCA on 2,000 test digits...")
def _pca(n):
    with one_thread():
        pca = dj.fit_pca(TEST_X[:n])
        return pca, dj.project(pca, TEST_X[:n]), TEST_Y[:n].numpy()


@st.cache_resource(show_spinner=f"Sampling {N_PER_DIGIT * 10} digits with all their steps (once per schedule "
                   "and w)...", max_entries=8)
def _many(model_key, spec, w, seed, _model):
    sched = make_schedule(spec)
    labels = torch.arange(10).repeat_interleave(N_PER_DIGIT)
    with one_thread():
        g = torch.Generator().manual_seed(seed)
        x = prior_sample(sched, (len(labels), 1, 28, 28), generator=g)
        t0 = time.perf_counter()
        traj = sample(_denoiser(_model, spec, labels, w), x, sched, "ddim", PCA_STEPS, generator=g,
                      return_trajectory=True)
        return traj, labels.numpy(), time.perf_counter() - t0


@st.cache_resource(show_spinner=False, max_entries=16)
def _pca_movie(model_key, spec, w, what, _model):
    sched = make_schedule(spec)
    pca, cloud, cloud_y = _pca(N_PCA_FIT)
    traj, labels, _ = _many(model_key, spec, w, 0, _model)
    paths = dj.project_trajectory(pca, traj, sched, what)
    return dj.pca_journey(cloud, cloud_y, paths, labels, traj.ts, sched, what=what), paths


@st.fragment
def _pca_section():
    what = st.radio("What each particle shows", ["x_t", "x0_hat"], horizontal=True, key="journey.pca_what",
                    format_func={"x_t": "the noisy image x_t / √(α² + σ²)", "x0_hat": "the model's guess x̂₀"}.get)
    try:
        fig, paths = _pca_movie(MODEL_KEY, SPEC, v.guidance, what, model)
    except ValueError as e:
        st.error(f"Sampling failed: {e}")
        return
    _, _, seconds = _many(MODEL_KEY, SPEC, v.guidance, 0, model)
    st.plotly_chart(fig, width="stretch", theme=None, key="journey.pca")
    st.caption(
        f"{N_PER_DIGIT * 10} samples, DDIM with {PCA_STEPS} steps (sampled in {seconds:.1f} s, then cached). Press Play: "
        "every frame is in your browser. The movie opens on the finished samples; drag it back to step 0.")
    downloads(fig, f"pca-journeys-{what}", key="journey.dl.pca", gif=True)
    st.markdown(
        "**Why x_t divided by √(α² + σ²)?** That is exactly what the network is fed. At the start it is pure noise: "
        "a random direction in 784 dimensions has almost nothing along any two chosen axes, so every particle "
        "begins in one tight blob around the projection of x = 0 (a flat mid-grey image), which lies "
        "off-centre because the PCA is centred on the average digit. Dividing by α instead would blow the start "
        "up by as much as e⁵ ≈ 150 times and squash the clusters to a dot. The particles then fan out and land in their digit's cluster. Switch to **x̂₀** to see the "
        "guesses instead: they start at the average digit and split by class much earlier than x_t does."
    )


_pca_section()

show_source(dj.sub_grid, dj.denoise_from, dj.journey_from, dj.survival_sweep, dj.fit_pca, dj.project_trajectory,
            sample, guided)

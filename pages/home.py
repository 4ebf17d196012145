"""Home: what the lab shows, how to use it, a map of the pages, and one live picture."""

import streamlit as st

from diffusion.schedules import make_schedule
from ui.figures import forward_panels
from ui.page import downloads, show_source
from ui.present import chart
from ui.state import view

v = view()

st.title("Diffusion lab")
st.markdown(
    """
A diffusion model learns a whole **distribution** of data rather than one right answer. It never
writes that distribution down. What it learns is how to *remove noise*, and repeating that from pure
noise produces new samples. This lab walks through every step on small 2-D distributions whose
density we know exactly, so each learned quantity can be shown next to the true one.
"""
)

st.page_link("pages/lesson.py", label="Start the lesson: the whole argument in 14 steps, with a question at each",
             icon=":material/school:")
st.caption("For a class: add ?present=1 to any address, or switch on Presenter mode at the top of a page, for large "
           "type and figures without the sidebar.")

st.subheader("How to use it")
st.markdown(
    """
- **The sidebar is shared by every page.** It holds the dataset, the noise schedule and its
  parameters, the time *t*, the label (the "prompt"), and the model and sampler. Your choices stay
  put when you change page.
- **The address bar holds the view.** Copy the URL to share exactly what you see, for example with a
  class.
- **Sliders inside a chart run in your browser.** Press ▶ or drag the slider under a figure to play
  the noise level like a video.
- Each page has a **Show the code** expander and **Download** buttons for its figures.
"""
)

st.subheader("The story, page by page")
MAP = [
    ("pages/data.py", "A prompt (a label) picks out a whole distribution of answers, not one point."),
    ("pages/energy.py", "Density as energy, E = −log p, and why the normaliser Z cannot be computed in high dimensions."),
    ("pages/score.py", "The score ∇ log p points uphill in density and needs no Z; learned and exact arrows side by side."),
    ("pages/forward.py", "Noising data step by step: α, σ, the signal-to-noise ratio and log-SNR for every schedule."),
    ("pages/train.py", "Train a model live: the loss curve and its samples update as it learns."),
    ("pages/denoise.py", "What the network learns: the average clean point behind a noisy one, and memorising versus generalising."),
    ("pages/reverse.py", "Sampling: particles flow from noise back to data, with a choice of samplers (ODE and SDE)."),
    ("pages/your_data.py", "Upload or draw your own points, then train on them and explore them on every page."),
    ("pages/digits_generate.py", "The same machinery on 28 × 28 images: a digit as the prompt, and guidance."),
    ("pages/digits_journey.py", "One digit's walk from noise to ink, and what the network guesses on the way."),
    ("pages/digits_prompts.py", "Composing prompts (“a 3 and an 8”) by adding their scores, and what a classifier sees."),
    ("pages/digits_train.py", "Train your own digit model live and watch the digits form; it then serves pages 9-11."),
]
for path, text in MAP:
    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    c1.page_link(path)
    c2.markdown(text)

st.subheader("A first look: data turning into noise")
st.markdown(
    f"""
Each clean point $x_0$ of **{v.dataset}** is mixed with Gaussian noise $\\varepsilon$. The grey heat map
is the exact density of the noisy points, which we know because the toy data is a Gaussian mixture.
Change the dataset or the schedule in the sidebar and the picture follows.
"""
)
st.latex(r"x_t = \alpha_t\, x_0 + \sigma_t\, \varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, I), "
         r"\qquad \lambda_t = \log \frac{\alpha_t^2}{\sigma_t^2}")

TS = (0.0, 0.25, 0.5, 0.75, 1.0)


@st.cache_data(show_spinner=False, max_entries=64)
def _figure(data_key: str, spec: str, label, _dist):
    """`data_key` names `_dist`."""
    return forward_panels(_dist, make_schedule(spec), TS, label=label)


fig = _figure(v.data_key, v.schedule.spec(), v.label, v.dist)
chart(fig, width="stretch", theme=None)
st.caption("At t = 0 the points are the data, coloured by class. By t = 1 only noise is left. The log-SNR λ "
           "falls as t grows: a high λ means mostly signal, a low λ mostly noise.")
downloads(fig, f"forward-{v.dataset}-{v.schedule.name}", key="home.fig")
show_source(forward_panels)

"""Home: what the lab is, and one live picture of the forward process on a toy distribution."""

import inspect

import streamlit as st

from toy_data import DATASETS, get_dataset
from diffusion.schedules import SCHEDULES, make_schedule
from ui.figures import forward_panels

st.title("Diffusion lab")
st.markdown(
    """
A diffusion model learns a whole **distribution** of data, not one answer. It never writes that
distribution down: it learns to *undo noise*, and running that undoing from pure noise produces new
samples. This lab shows every step of that story on small 2-D distributions whose density we know
exactly, so every learned quantity can sit beside the true one.

Below: a toy distribution being destroyed by the **forward process**. Each clean point $x_0$ is
mixed with Gaussian noise $\\varepsilon$; the heat map is the exact density of the noisy points.
"""
)
st.latex(r"x_t = \alpha_t\, x_0 + \sigma_t\, \varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, I), "
         r"\qquad \lambda_t = \log \frac{\alpha_t^2}{\sigma_t^2}")

c1, c2 = st.columns(2)
dataset = c1.selectbox("Toy distribution", list(DATASETS), index=0)
schedule_name = c2.selectbox("Noise schedule", list(SCHEDULES), index=list(SCHEDULES).index("cosine"))


@st.cache_data(show_spinner=False, max_entries=64)
def _figure(dataset: str, schedule_name: str):
    return forward_panels(get_dataset(dataset), make_schedule(schedule_name), [0.0, 0.25, 0.5, 0.75, 1.0])


st.plotly_chart(_figure(dataset, schedule_name), width="stretch")
st.caption("At t = 0 the points are the data, coloured by their class label; by t = 1 nothing but "
           "noise is left. The log-SNR λ falls as t grows: high λ means mostly signal, low λ mostly noise.")

with st.expander("Show the code that drew this"):
    st.code(inspect.getsource(forward_panels), language="python")

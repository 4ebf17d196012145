"""Lesson: the whole argument as fourteen steps, one figure each, with a check question per step.

The step is in the URL (?step=7, 1-based), with its control's value, so a teacher can put one link per step on a
slide; ?present=1 is presenter mode (ui/present.py), where the answers wait for the presenter to reveal them.
"""

import streamlit as st

from ui.figures import SpecFigure, figure_dict
from ui.lesson import STEPS, index_of
from ui.lesson_figures import build
from ui.page import show_source
from ui.present import chart, shorter
from ui.present import on as presenting
from ui.state import bound, request, view
from ui.workers import offload

view()  # the sidebar's view is not used: every step has its own settings
present = presenting()
STEP = "lesson.step"  # the step list's key: an index into STEPS
URL_SEEN = "lesson.url_step"  # the ?step= value this session last took from, or wrote to, the URL
ANSWERS = "lesson.answers"  # step key -> whether the first checked answer was right
PRESENT_PLOT = 340  # px before presenter mode's x1.25: the height of a figure's plot area on a projector

# A ?step= link opened in this session (cold, or from another page) picks the step; after that the widgets do.
raw = st.query_params.get("step")
if raw is not None and raw != st.session_state.get(URL_SEEN):
    st.session_state[STEP] = index_of(raw)
st.session_state.setdefault(STEP, 0)


def _check(step_key: str, question, reply) -> None:
    """Score the first checked answer of a step and show the explanation of the latest."""
    st.session_state[ANSWERS].setdefault(step_key, question.is_right(reply))
    st.session_state[f"lesson.revealed.{step_key}"] = reply


def _go(delta: int) -> None:
    st.session_state[STEP] = min(max(st.session_state[STEP] + delta, 0), len(STEPS) - 1)


if not present:  # a projector's screen goes to the step itself
    st.title("Lesson: how a diffusion model learns a distribution")
    st.caption(f"{len(STEPS)} steps, from a prompt to what the network learned, all on two moons under the cosine "
               "schedule with the shipped network; the sidebar's settings do not change them. Each step ends in a "
               "question and a button to the page that goes deeper.")
answers = st.session_state.setdefault(ANSWERS, {})
with st.container(horizontal=True, vertical_alignment="bottom"):
    st.selectbox("Step", range(len(STEPS)), key=STEP, format_func=lambda k: f"{k + 1} · {STEPS[k].title}",
                 width=700, label_visibility="collapsed" if present else "visible",
                 help="Every step of the argument, in order. The address bar holds the step: ?step=7 opens step 7.")
    k = st.session_state[STEP]
    st.button("Previous", icon=":material/arrow_back:", on_click=_go, args=(-1,), disabled=k == 0, key="lesson.prev")
    st.button("Next", icon=":material/arrow_forward:", on_click=_go, args=(1,), disabled=k == len(STEPS) - 1,
              key="lesson.next")
    if not present:
        st.caption(f"Score: {sum(answers.values())} right of {len(answers)} answered ({len(STEPS)} questions)")
st.query_params["step"] = str(k + 1)
st.session_state[URL_SEEN] = str(k + 1)
step = STEPS[k]

# In presenter mode the formula sits beside the words and the control with its "try this" comes under the figure,
# so that the title, the words and the whole figure fit one projector screen; otherwise they come in reading order.
(st.title if present else st.header)(f"{k + 1} · {step.title}")
if present:
    words, maths = st.columns([3, 2], gap="large", vertical_alignment="center")
    figure_place = st.container()
    control_place, try_place = st.columns([2, 3], gap="large", vertical_alignment="center")
else:
    words = maths = control_place = figure_place = try_place = st.container()
words.markdown(step.text)
maths.latex(step.formula)
control = step.control
widget = control_place.radio if isinstance(control.default, str) else control_place.select_slider
ckey = f"lesson.{step.key}"
if ckey in st.session_state and st.session_state[ckey] not in control.options:
    del st.session_state[ckey]
start = {"index": control.options.index(control.default), "horizontal": True} if isinstance(control.default, str) \
    else {"value": control.default}
value = bound(widget, control.label, control.options, key=ckey, help=control.help or None, **start)


@st.cache_resource(show_spinner=False, max_entries=256)
def _figure(step_key: str, value) -> dict:
    """The step's figure as a plain dict, built once per server (its data and model are fixed by the lesson)."""
    return figure_dict(offload(build, step_key, value))


with figure_place, st.spinner("Drawing this step's figure (once for the whole class)..."):
    spec = _figure(step.key, value)
    if present:  # so the title, the words and the plot fit one 1080-line screen (x1.25 in chart)
        spec = shorter(spec, PRESENT_PLOT)
    chart(SpecFigure(spec), width="stretch", theme=None, key=f"lesson.fig.{step.key}")
try_place.info(f"**Try this.** {step.try_this}", icon=":material/touch_app:")

q = step.question
st.subheader("Check yourself")
st.markdown(q.prompt)
revealed_key = f"lesson.revealed.{step.key}"
if q.choices:
    reply = st.radio("Your answer", range(len(q.choices)), index=None, format_func=lambda i: q.choices[i],
                     key=f"lesson.reply.{step.key}", label_visibility="collapsed")
else:
    reply = st.number_input("Your answer", value=None, step=1.0, key=f"lesson.reply.{step.key}")
if present:
    st.button("Reveal the answer", key=f"lesson.reveal.{step.key}", icon=":material/visibility:",
              on_click=st.session_state.__setitem__, args=(revealed_key, True))
    if st.session_state.get(revealed_key):
        st.success(f"**Answer: {q.answer_text()}.** {q.why}")
else:
    st.button("Check my answer", key=f"lesson.check.{step.key}", disabled=reply is None, icon=":material/check:",
              on_click=_check, args=(step.key, q, reply))  # a callback, so the score above counts it in this run
    if revealed_key in st.session_state and st.session_state[revealed_key] is not True:
        if q.is_right(st.session_state[revealed_key]):
            st.success(f"**Right: {q.answer_text()}.** {q.why}")
        else:
            st.error(f"**Not quite: the answer is {q.answer_text()}.** {q.why}")

if st.button("Go deeper: the full page, on the same view", key="lesson.deeper", icon=":material/open_in_new:",
             help="Opens the page this step comes from, with the lesson's data, schedule and this step's settings."):
    request(**step.page_state())  # the sidebar and the page's widgets take these values on the next run
    st.switch_page(f"pages/{step.page}.py")  # the bound widgets write the view into the URL themselves


@st.cache_resource(show_spinner=False)
def _offline_file() -> bytes:
    """The whole lesson as one HTML file, written once per server from the figures' shared cache."""
    from ui import lesson_file  # matplotlib and plotly.js load only when the file is asked for

    return lesson_file.html(figure=_figure).encode()


if not present:
    st.divider()
    st.download_button("Download the whole lesson as one offline HTML file", _offline_file, "lesson.html",
                       "text/html", key="lesson.offline", on_click="ignore", icon=":material/download:")
    st.caption("Every step's text, formula and figure (with its animation) and the questions, in one file of about "
               "10 MB that opens in any browser without this server (`python -m ui.lesson_file` writes the same).")
    show_source(build)

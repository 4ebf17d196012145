"""Page 6's "train one yourself": a network trained on the user's N points in a background thread, then shown
beside the ideal denoiser of those points and fresh samples, as the shipped networks are (ui/memorisation.py).

For a built-in dataset the N points are `training_set(dist, N, SEED)`, the shipped networks' sets for their N.
For the user's own data (page 8) they are the user's points, and the fresh samples are drawn from the mixture
fitted to them. The recipe is ui.memorisation.USER_RECIPE: the shipped one, shortened to finish in seconds.
"""

from __future__ import annotations

import time

import streamlit as st
import torch

from .figures import SpecFigure
from .memorisation import (RECIPE, USER_NS, USER_RECIPE, compute_one, distance_table, distances, train_net,
                           user_training_set, verdict)
from .memorisation_figures import memorisation_figure
from .page import downloads
from .present import chart
from .state import CUSTOM, DATASET_NAMES, bound
from .threads import BackgroundJob, lower_this_threads_priority
from .training import MAX_CONCURRENT, eta_text, training_slot

JOB = "_memo_job"  # this session's MemoJob (one at a time)
POLL_S = 1.0  # how often the section redraws while its network trains


class MemoJob(BackgroundJob):
    """One network trained on a user's N points in a background thread, then sampled beside the ideal denoiser
    of those points and fresh data. As ui.training.TrainingJob: one torch thread, a lower priority than the
    pages, at most MAX_CONCURRENT at once; every public read is a consistent copy taken under a lock."""

    def __init__(self, dist, dataset: str, data_key: str, points, labels, recipe: dict | None = None):
        super().__init__(f"memorise-{dataset}-N{len(points)}")
        self.dist, self.dataset, self.data_key = dist, dataset, data_key
        self.points, self.labels = points, labels
        self.n = len(points)
        self.recipe = dict(USER_RECIPE if recipe is None else recipe)
        self._step, self._started, self._seconds = 0, None, None
        self.arrays: dict | None = None  # compute_one's, once done
        self.error = ""
        self.shown = False  # set by the page once it has drawn the finished job
        self.view: tuple | None = None  # job_view's, built once

    ACTIVE = ("queued", "running", "sampling")

    def progress(self) -> dict:
        """state (new, queued, running, sampling, done, stopped, failed), step, total, training seconds so far."""
        with self._lock:
            end = self._seconds if self._seconds is not None else time.perf_counter() - (self._started or 0)
            return {"state": self._state, "step": self._step, "total": self.recipe["steps"],
                    "seconds": 0.0 if self._started is None else end}

    def _callback(self, info: dict) -> None:
        with self._lock:
            self._step = info["step"]

    def _run(self) -> None:
        torch.set_num_threads(1)  # as TrainingJob (ui/training.py): one thread per job
        lower_this_threads_priority()
        with training_slot(self._stop) as got:
            if not got:
                with self._lock:
                    self._state = "stopped"
                return
            self._train()

    def _train(self) -> None:
        try:
            with self._lock:
                self._state, self._started = "running", time.perf_counter()
            net, result = train_net(self.dist, self.n, self.recipe, self._callback, self.points, self._stop.is_set)
            with self._lock:
                self._seconds = time.perf_counter() - self._started
                self._state = "stopped" if result.stopped else "sampling"
                if result.stopped and not self._stop.is_set():
                    self.error = f"training could not go on: {result.stopped}"
            if result.stopped:
                return
            arrays = compute_one(self.dist, self.points, self.labels, net)
            with self._lock:
                self.arrays, self._state = arrays, "done"
        except Exception as e:  # noqa: BLE001 -- shown on the page, never a silent dead thread
            with self._lock:
                self._state, self.error = "failed", f"{type(e).__name__}: {e}"
                if self._seconds is None and self._started is not None:
                    self._seconds = time.perf_counter() - self._started


def job_view(job: MemoJob) -> tuple:
    """(figure, its dict, distance table, verdict) of a finished job, built once and kept on the job."""
    if job.view is None:
        d = distances(job.arrays, (job.n,))[job.n]
        samples = {k: job.arrays[f"{k}_{job.n}" if k != "true" else "true"] for k in d}
        fig = memorisation_figure(job.arrays[f"train_{job.n}"], samples)
        job.view = (fig, fig.to_dict(), distance_table(d), verdict(job.n, d))
    return job.view


def recipe_text(job: MemoJob) -> str:
    """The caption under a finished job: its recipe against the shipped networks', and what that changes."""
    r = job.recipe
    return (f"Trained here in {job.progress()['seconds']:.0f} s: {r['steps']:,} steps of {r['batch']:,} points drawn "
            f"from the N, everything else as for the shipped networks, which take {RECIPE['steps']:,} steps of "
            f"{RECIPE['batch']:,} (2 to 4 minutes each). Trained less, a network fits its points less closely, so "
            "it copies them only at smaller N than the shipped networks do" + (
                ": on moons, at N = 16 a little over half of its samples are copies, and at N = 64 most are new, where "
                "the shipped network's are still copies." if job.dataset == "moons" else "."))


def own_section(v, dist) -> None:
    """The section's controls and result; it redraws alone every POLL_S seconds while its network trains."""
    job = st.session_state.get(JOB)
    st.fragment(run_every=POLL_S if job is not None and job.active else None)(_own_body)(v, dist)


def _own_body(v, dist) -> None:
    job = st.session_state.get(JOB)
    busy, own = job is not None and job.active, v.dataset == CUSTOM
    st.subheader("Train one yourself")
    if own:
        n = len(dist.means)
        st.markdown(f"The training set is **your {n:,} points** from page 8 (standardised). The ideal denoiser "
                    "weighs exactly them; the fresh samples come from the mixture fitted to them (bandwidth h).")
    else:
        st.markdown("Pick any N for the sidebar's dataset: a network of the same size is trained here, in the "
                    "background, on exactly those N points, then sampled beside the ideal denoiser of the same points "
                    "and fresh data. Does it copy its points, or make new ones?")
        n = bound(st.number_input, "Your training set size N", USER_NS[0], USER_NS[1], 100, 1, key="denoise.own_n",
                  disabled=busy, help=f"{USER_NS[0]}..{USER_NS[1]}: N points of {DATASET_NAMES.get(v.dataset, v.dataset)} drawn with "
                  "seed 0 (for an N of the slider above, the very points its network was trained on).")
    if st.button(f"Train a network on these {n:,} points", icon=":material/model_training:", key="denoise.own_train",
                 disabled=busy):
        try:
            points, labels = user_training_set(dist, n, own)
        except ValueError as e:
            st.error(f"Cannot train: {e}.")
            return
        st.session_state[JOB] = MemoJob(dist, v.dataset, v.data_key, points, labels).start()
        st.rerun()  # the whole page, so that this section starts polling
    if job is None:
        st.caption("Training takes about 7 s on an idle 2-core CPU, longer on a busy server; the page stays "
                   "usable meanwhile.")
        return
    pr = job.progress()
    if job.active:
        text = ("Waiting for a free training slot..." if pr["state"] == "queued" else
                "Sampling the network and the ideal denoiser..." if pr["state"] == "sampling" else
                eta_text(pr["step"], pr["total"], pr["seconds"]))
        st.progress(pr["step"] / pr["total"], text=f"N = {job.n:,}: {text}")
        st.button("Stop", icon=":material/stop:", key="denoise.own_stop", on_click=job.request_stop)
        return
    if not job.shown:
        job.shown = True
        st.rerun()  # once, so that the section stops polling
    if pr["state"] != "done":
        if job.error:
            st.error(f"Training failed: {job.error}")
        else:
            st.info("Stopped before the end: press Train to start again.")
        return
    fig, spec, table, text = job_view(job)
    chart(SpecFigure(spec), width="stretch", theme=None, key="denoise.own_memo")
    st.table(table.style.format({"median distance to nearest": "{:.3f}", "share closer than 0.02": "{:.0%}"})
             .hide(axis="index"))
    moved = "" if job.data_key == v.data_key else " (the sidebar has moved on since: train again for its dataset)"
    st.caption(f"{DATASET_NAMES.get(job.dataset, job.dataset)}, N = {job.n:,}{moved}. " + recipe_text(job))
    st.markdown(text)
    downloads(fig, f"memorisation-{job.dataset}-yours-N{job.n}", key="denoise.dl.own")

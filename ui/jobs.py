"""Background jobs in the dashboard (``fashion_core.jobs``): the server's one runner, who "you"
are, submitting, and the compact job indicator every page shows in the sidebar.

The runner is a thread of the Streamlit server, started once per registry folder
(``st.cache_resource``); a page only submits a job and reads the job store, so leaving the page,
reloading or opening another tab never touches a run. "You" is an id kept in the session
(``st.session_state``): your own jobs are marked, and everyone sees the running job and the queue
(docs/JOBS.md says why).
"""

from __future__ import annotations

import uuid

import streamlit as st

from fashion_core.errors import FashionError
from fashion_core.jobs import DONE, QUEUED, RUNNING, JobRunner, JobStore
from fashion_core.registry import Registry, free_name
from ui import cache
from ui.progress import clock, progress_line

REFRESH_SECONDS = 2
OWNER_KEY = "job_owner"
SEEN_KEY = "jobs_ended_seen"
STATE_ICONS = {"queued": ":material/schedule:", "running": ":material/model_training:", "done": ":material/check_circle:",
               "cancelled": ":material/cancel:", "failed": ":material/error:", "interrupted": ":material/power_off:"}


def store():
    """The job store next to the registry in use (cheap: it only holds a path)."""
    return JobStore.for_registry(cache.registry())


@st.cache_resource(show_spinner=False)
def _runner(root):
    registry = Registry(root)
    return JobRunner(JobStore.for_registry(registry), registry).start()


def runner():
    """The server's job runner for the registry in use, started on first use."""
    return _runner(str(cache.registry().root))


def owner():
    """This browser session's id: jobs it submits are "yours"."""
    return st.session_state.setdefault(OWNER_KEY, uuid.uuid4().hex[:8])


def is_mine(job):
    return job.owner == owner()


def submit(kind, params):
    """Queue a job for this session and wake the runner; the job, or None after showing why it
    was refused (a bad setting, a taken name)."""
    try:
        job = store().submit(kind, params, owner=owner(), registry=cache.registry())
    except FashionError as exc:
        st.error(str(exc))
        return None
    runner().wake()
    return job


def pending_targets():
    """Model names that queued or running jobs will register (taken for a new run)."""
    return {job.target for job in store().list() if job.state in (QUEUED, RUNNING) and job.target}


def free_model_name(text):
    """A default model name that no registry model has and no queued or running job will take."""
    return free_name(text, {e.name for e in cache.model_entries()[0]} | pending_targets())


def status_line(job):
    """One line of a job's progress: stage, epoch, batch, ETA; or where it waits; or how it ended."""
    if job.state == RUNNING:
        p = job.progress
        if not p:
            return "starting (loading the data)…"
        return progress_line(p["stage"], p.get("epoch", 0), p["epochs"], p.get("batch", 0), p["steps"],
                             eta=job.eta_seconds(), run_label=p.get("run_label", ""))
    if job.state == QUEUED:
        position = queue_position(job)
        return f"waiting: {'next' if position == 1 else f'number {position}'} in the queue"
    if job.state == DONE:
        took = (job.ended_at or 0) - (job.started_at or 0)
        return f"done in {clock(took)}"
    return f"{job.state}: {job.error}"


def queue_position(job):
    return store().position(job.id)


def job_indicator_ui():
    """The sidebar's job indicator (every page): the running job with its progress, the queue
    length, and how this session's last jobs ended; refreshed every ``REFRESH_SECONDS``. When a
    job ends, the whole page reruns once, so a new model appears in its lists at once."""
    runner()
    st.session_state[SEEN_KEY] = _ended_ids(store().list())
    with st.sidebar:
        _indicator()


def _ended_ids(jobs):
    return sorted(job.id for job in jobs if job.ended)


@st.fragment(run_every=REFRESH_SECONDS)
def _indicator():
    jobs = store().list()
    ended = _ended_ids(jobs)
    if set(ended) - set(st.session_state.get(SEEN_KEY, ended)):
        st.session_state[SEEN_KEY] = ended
        st.rerun()  # registry and results changed: every list on the page is read again
    running = next((job for job in jobs if job.state == RUNNING), None)
    queued = [job for job in jobs if job.state == QUEUED]
    mine = [job for job in jobs if is_mine(job) and job.ended][-3:]
    if not (running or queued or mine):
        return
    with st.container(border=True, key="job_indicator"):
        st.markdown("**Jobs**")
        if running:
            st.markdown(f"{STATE_ICONS[RUNNING]} **{running.title}**{' (yours)' if is_mine(running) else ''}  \n"
                        f"{status_line(running)}")
            st.progress(running.fraction_done())
        if queued:
            yours = sum(is_mine(job) for job in queued)
            st.caption(f"{len(queued)} waiting in the queue" + (f" ({yours} yours)" if yours else ""))
        for job in reversed(mine):
            st.caption(f"{STATE_ICONS[job.state]} {job.title}: {status_line(job)}")
        st.page_link("views/train.py", label="Jobs on the Train page", icon=":material/list:")

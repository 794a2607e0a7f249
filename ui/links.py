"""Shareable views: ``st.query_params`` read once when a page opens, written as the view changes.

A page calls ``initial_choice`` *before* creating a widget: on the first run of that page in a
session, a valid query parameter is remembered as that widget's default (``linked``: the same
default on every later run, so the widget keeps its identity); a bad or stale one (unknown
model, class, index) is ignored with a short notice. After the widgets,
``mirror`` writes what is on screen back to the URL, and ``copy_link_ui`` shows the link.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

import streamlit as st

_APPLIED = "_query_applied"
_LINKED = "_linked_"


def _first_visit(page):
    """True once per session and page: the run in which the URL's parameters are applied."""
    applied = st.session_state.setdefault(_APPLIED, set())
    return page not in applied


def mark_applied(page):
    st.session_state.setdefault(_APPLIED, set()).add(page)


def initial_choice(page, param, key, options, parse=str, label=None):
    """Take ``?param=value`` as widget ``key``'s default on the page's first run in this session.

    ``parse`` turns the text into an option (raising ``ValueError`` for a bad one); a value that
    is not in ``options`` (or for which the predicate ``options`` is false) is ignored with a
    notice. Returns the applied option or None.
    """
    raw = st.query_params.get(param)
    if raw is None or not _first_visit(page):
        return None
    try:
        value = parse(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or not (options(value) if callable(options) else value in options):
        st.caption(f":material/link_off: The link's {label or param} “{raw}” is not available here; "
                   "showing the default instead.")
        return None
    st.session_state[_LINKED + key] = value
    return value


def linked(key, fallback):
    """The default of widget ``key``: the value a link gave it, else ``fallback``."""
    return st.session_state.get(_LINKED + key, fallback)


def class_index(class_names):
    """A ``parse`` for ``initial_choice``: a class name (or its index) → the class index."""
    def parse(text):
        if text in class_names:
            return list(class_names).index(text)
        return int(text)
    return parse


def mirror(page, **params):
    """Write ``params`` (None values dropped) as the URL's query, keeping nothing else; marks
    the page's parameters as applied so later reruns follow the widgets, not the URL."""
    mark_applied(page)
    wanted = {k: str(v) for k, v in params.items() if v is not None}
    if dict(st.query_params) != wanted:
        st.query_params.from_dict(wanted)
    return wanted


def link_to(params):
    """The page's URL with ``params`` as its query (the server learns the browser's URL from
    ``st.context.url``; without it, a relative ``?…`` link)."""
    query = urlencode(params)
    base = getattr(st.context, "url", None) or ""
    if base:
        parts = urlsplit(base)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    return f"?{query}"


COPY_LINK_KEY = "copy_link"


def copy_link_ui(params):
    """"Copy link to this view": the link in a code block (its copy button copies it), built only
    while the expander is open (a closed one sends nothing, and the browser then never loads the
    code block's 1.5 MB syntax highlighter on a first visit)."""
    with st.expander(":material/link: Copy link to this view", key=COPY_LINK_KEY, on_change="rerun") as box:
        if box.open:
            st.code(link_to(params), language=None)
            st.caption("Anyone with this link opens this page with the same model and selection.")

"""Fashion Studio: the dashboard's entry point (``streamlit run app.py``).

Declares the pages, the shared sidebar (data source, background jobs) and the page settings. TensorFlow is never
imported here: pages import it lazily through ``ui.cache`` so the home page appears fast.
"""

import streamlit as st

from ui.data_source import data_source_ui
from ui.jobs import job_indicator_ui
from ui.runtime import keep_keras_session

PAGES = [
    st.Page("views/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("views/train.py", title="Train", icon=":material/model_training:"),
    st.Page("views/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("views/latent.py", title="Latent space", icon=":material/scatter_plot:"),
    st.Page("views/classify.py", title="Classify", icon=":material/photo_camera:"),
    st.Page("views/models.py", title="Models", icon=":material/inventory_2:"),
]


def main():
    st.set_page_config(page_title="Fashion Studio", page_icon=":material/checkroom:", layout="wide")
    keep_keras_session()  # a rerun must not clear the shared models' state (ui/runtime.py)
    page = st.navigation(PAGES)
    data_source_ui()
    page.run()
    job_indicator_ui()  # after the page: it already shows a job the page just submitted or cancelled


main()

"""Diffusion lab: the Streamlit entry point. Run with `streamlit run app.py`.

The sidebar (ui/state.py) is drawn here, before the page, so its values are shared by every page and
kept in the URL; each page then reads `ui.state.view()`.
"""


def show_titled_navigation() -> None:
    """Turn the sidebar navigation on, once per server, just before st.navigation draws it.

    On a fresh server's first run Streamlit runs the requested file of pages/ on its own and shows the raw
    file names of that folder ("app", "data", ...) as navigation, with links that lead nowhere once the
    titled navigation exists. .streamlit/config.toml hides sidebar navigation so that list never shows;
    the titled one below is then shown by turning the option back on.
    """
    from streamlit import config

    if config.get_option("client.showSidebarNavigation") is False:
        config.set_option("client.showSidebarNavigation", True)


def main() -> None:
    import streamlit as st

    st.set_page_config(page_title="Diffusion lab", page_icon=":material/blur_on:", layout="wide")

    PAGES = {
        "The story on 2-D data": [  # the story's order: data, energy, score, noise, learning, sampling
            st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
            st.Page("pages/lesson.py", title="Lesson", icon=":material/school:", url_path="lesson"),
            st.Page("pages/data.py", title="1 · Data and prompts", icon=":material/scatter_plot:", url_path="data"),
            st.Page("pages/energy.py", title="2 · Energy and the normaliser", icon=":material/landscape:", url_path="energy"),
            st.Page("pages/score.py", title="3 · Score field", icon=":material/explore:", url_path="score"),
            st.Page("pages/forward.py", title="4 · Forward process and SNR", icon=":material/blur_on:", url_path="forward"),
            st.Page("pages/train.py", title="5 · Train", icon=":material/model_training:", url_path="train"),
            st.Page("pages/denoise.py", title="6 · What the model learns", icon=":material/center_focus_strong:",
                    url_path="denoise"),
            st.Page("pages/reverse.py", title="7 · Reverse sampling", icon=":material/replay:", url_path="reverse"),
            st.Page("pages/your_data.py", title="8 · Your own data", icon=":material/edit:", url_path="your_data"),
        ],
        "The same story on digits": [
            st.Page("pages/digits_generate.py", title="9 · Generate digits", icon=":material/draw:",
                    url_path="digits_generate"),
            st.Page("pages/digits_journey.py", title="10 · A digit's journey", icon=":material/movie:",
                    url_path="digits_journey"),
            st.Page("pages/digits_prompts.py", title="11 · Prompts on digits", icon=":material/join:",
                    url_path="digits_prompts"),
            st.Page("pages/digits_train.py", title="12 · Train digits", icon=":material/model_training:", url_path="digits_train"),
        ],
    }
    # url_path is each file's own name: on a fresh server's first run Streamlit may resolve the URL by file
    # name before app.py has run (ui/state.py, view()). The navigation comes before the heavy imports below,
    # so that it is on screen from the first moment.
    show_titled_navigation()
    # Presenter mode hides the sidebar (ui/present.py), so there the navigation moves to the top of the page. The
    # check is ui.present.on()'s, read here without importing ui (which loads torch) before the navigation shows.
    presenting = st.session_state.get("present", str(st.query_params.get("present", "")).lower() in ("1", "true"))
    page = st.navigation(PAGES, position="top" if presenting else "sidebar")

    from ui import present
    from ui.state import forget, sidebar
    from ui.threads import quick_gil_handoff, use_one_thread

    use_one_thread()  # one torch thread per computation, so a class's sessions share the cores (ui/threads.py)
    quick_gil_handoff()  # a short GIL switch interval, so torch work is not starved by other sessions' Python
    sidebar()
    present.toggle()  # presenter mode (?present=1): the switch at the top of every page, then its style
    present.style()
    try:
        page.run()
    finally:
        forget()


# Streamlit runs this file as "__main__". A worker process (ui/workers.py), started by Python's spawn
# method while a page runs, imports it as "__mp_main__": there it must import nothing and draw nothing.
if __name__ == "__main__":
    main()

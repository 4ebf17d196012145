"""Opening a page of the app in streamlit.testing.v1.AppTest, the way a shared link would."""

import pathlib

from streamlit.testing.v1 import AppTest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def open_page(page: str = "pages/home.py", timeout: int = 180, **query) -> AppTest:
    """AppTest of app.py showing `page`, with the sidebar set through URL query parameters."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    at.query_params.update(query)
    at.run()
    if page != "pages/home.py":
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at

"""Being written (issue 5)."""

import streamlit as st

from ui.state import view

v = view()
st.write("coming")

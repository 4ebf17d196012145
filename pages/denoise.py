"""Placeholder while the page is being written (issue 4)."""

import streamlit as st

st.write("coming")

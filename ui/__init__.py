"""UI helpers for the Streamlit pages: pure figure builders and widget/state glue."""

"""The diffusion core: schedules, parameterizations, samplers (no Streamlit, no printing)."""

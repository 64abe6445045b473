"""Pure functions from arrays and dataclasses to plotly figures or HTML. No torch, no streamlit."""

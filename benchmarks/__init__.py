"""Performance tables, printed as markdown for the README: run each as `python -m benchmarks.NAME`
from the project folder (see its docstring). Nothing here is asserted in tests."""

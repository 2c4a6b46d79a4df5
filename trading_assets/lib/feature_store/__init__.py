"""Dagster-free helpers around the Feast repository: paths, offline export, repo loading, training
frames. Feast is imported lazily (it takes seconds), so importing this package stays cheap."""

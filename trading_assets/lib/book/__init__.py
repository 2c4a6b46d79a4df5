"""Order-book history: the lines the sidecar lands for a venue's L2 book, and its rebuild."""

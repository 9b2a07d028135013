"""tfedge.pack."""

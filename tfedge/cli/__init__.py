"""tfedge.cli."""

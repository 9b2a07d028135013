"""tfedge.budget."""

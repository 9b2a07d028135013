"""tfedge.runtime."""

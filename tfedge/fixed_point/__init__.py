"""tfedge.fixed_point."""

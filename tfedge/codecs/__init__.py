"""tfedge.codecs."""

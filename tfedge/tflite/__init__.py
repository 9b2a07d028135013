"""tfedge.tflite."""

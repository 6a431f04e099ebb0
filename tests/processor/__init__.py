"""Tests of the image processor, its circuit breaker and the retry job."""

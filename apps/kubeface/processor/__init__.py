"""The image processor: NSQ consumer, circuit breaker, face-service client."""

"""Kafka: the client factory, topic administration and the embedded local broker."""

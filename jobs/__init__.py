"""Thin Spark job entry points: build the session, wire sources → lakehouse transforms → sinks."""

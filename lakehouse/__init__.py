"""Fraudlake: real-time payment-fraud detection on a lakehouse.

Importing this package (or any module in it) must not start Spark, read the environment or touch
the disk: entry points load :func:`lakehouse.settings.load_settings` once and pass it down.
"""

__version__ = "0.1.0"

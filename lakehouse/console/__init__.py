"""The analyst console (``fraudlake console``): a web application where fraud analysts work the
alert queue and decide cases, which become label events on ``fraud_labels``."""

"""Errors a user can act on.

Every error the CLI shows without a stack trace derives from :class:`FraudlakeError`; its message
is written for the person at the terminal (what went wrong, and what to do about it).
"""

from __future__ import annotations


class FraudlakeError(Exception):
    """An expected failure with a message meant for the user; the CLI prints it on one line."""

    exit_code = 1


class ConfigError(FraudlakeError):
    """The configuration is invalid; the message names the file (or variable) and the key."""

    exit_code = 2


class BrokerUnavailableError(FraudlakeError):
    """No Kafka broker answered at the configured address."""

    exit_code = 3


class BrokerRefusedError(BrokerUnavailableError):
    """A Kafka broker answered but refused the connection: TLS trust, credentials or protocol."""

    exit_code = 5


class PlatformError(FraudlakeError):
    """A local platform component (broker JVM, jars) could not be set up or started."""

    exit_code = 4

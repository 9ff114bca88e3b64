"""Feature definitions and their offline and online computation."""

"""The inline decision service: approve, review or decline before the money moves, on the stream
scorer's features and model (``fraudlake serve``)."""

"""Many map-state calls in one exchange with Spark's state server.

``transformWithStateInPandas`` gives Python its state through a socket to the task's JVM: each
``MapState.getValue``/``updateValue`` sends one request and waits for its answer, so a batch
of a few hundred users pays a few hundred round trips each way (two context switches apiece on
a busy 2-core machine: most of the scorer's state time). The server reads requests in order
and answers each in order, so the requests of many users can be sent back to back and the
answers read afterwards: the same messages, the same state, one wait per chunk instead of one
per user.

This reaches below PySpark's public state API (the request messages of
``pyspark.sql.streaming.proto.StateMessage_pb2`` and the processor's API client), which is why
PySpark is pinned to one version in ``pyproject.toml``; every scorer test runs through it.
Chunks stay small enough that a chunk's requests (keys only, for reads) fit in the socket's
buffers while the server writes its answers, so neither side can block the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: Requests sent before their answers are read.
CHUNK = 128


def _send(api, call) -> None:
    import pyspark.sql.streaming.proto.StateMessage_pb2 as messages
    from pyspark.serializers import write_int

    request = messages.StateRequest(stateVariableRequest=messages.StateVariableRequest(mapStateCall=call))
    body = request.SerializeToString()
    write_int(0, api.sockfile)  # the message version, as PySpark writes it
    write_int(len(body), api.sockfile)
    api.sockfile.write(body)


def _answers(api, count: int, what: str) -> list[bytes]:
    from pyspark.errors import PySparkRuntimeError

    answers, error = [], None
    for _ in range(count):  # read every answer, even after an error: the exchange stays in step
        status, message, value = api._receive_proto_message()
        if status != 0 and error is None:
            error = message
        answers.append(value)
    if error is not None:
        raise PySparkRuntimeError(f"Error {what} map state: {error}")
    return answers


def get_values(state, keys: Sequence[tuple]) -> list[Any | None]:
    """``state.getValue(key)`` for every key, in order."""
    import pyspark.sql.streaming.proto.StateMessage_pb2 as messages

    client = state._mapStateClient
    api = client._stateful_processor_api_client
    out: list[Any | None] = []
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        for key in chunk:
            user_key = api._serialize_to_bytes(client.user_key_schema, key)
            _send(api, messages.MapStateCall(stateName=state._stateName, getValue=messages.GetValue(userKey=user_key)))
        api.sockfile.flush()
        out += [api._deserialize_from_bytes(v) if len(v) else None for v in _answers(api, len(chunk), "getting")]
    return out


def update_values(state, items: Sequence[tuple[tuple, tuple]]) -> None:
    """``state.updateValue(key, value)`` for every (key, value), in order."""
    import pyspark.sql.streaming.proto.StateMessage_pb2 as messages

    client = state._mapStateClient
    api = client._stateful_processor_api_client
    for start in range(0, len(items), CHUNK):
        chunk = items[start : start + CHUNK]
        for key, value in chunk:
            update = messages.UpdateValue(
                userKey=api._serialize_to_bytes(client.user_key_schema, key),
                value=api._serialize_to_bytes(client.value_schema, value),
            )
            _send(api, messages.MapStateCall(stateName=state._stateName, updateValue=update))
        api.sockfile.flush()
        _answers(api, len(chunk), "updating")

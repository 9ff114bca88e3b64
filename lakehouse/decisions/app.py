"""The decision service's HTTP API (FastAPI on uvicorn, the console's stack), on loopback.

- ``POST /v1/decisions``: a transaction in the stream's contract (JSON) → its decision
  (:meth:`lakehouse.decisions.service.DecisionService.decide`). An ``Idempotency-Key`` header
  makes a retry return the first answer (without it, the ``transaction_id`` is the key).
  ``?explain=features`` adds the feature values to the answer.
- ``POST /v1/echo``: the benchmark's floor: reads and parses the body and answers it, on the same
  server, stack and thread pool.
- ``GET /v1/health``: the champion the service decides with.

Errors are JSON ``{"error", "field", "message"}``: 400 for a body that is not JSON, 413 for one
over :data:`MAX_BODY`, 409 for a repeated transaction or a reused Idempotency-Key, 422 for a
contract violation or a late transaction, 503 (with ``Retry-After``) when the partition stays busy,
no champion is published yet, or the broker or the online store does not answer.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from lakehouse.decisions.batching import LaneBusy
from lakehouse.decisions.service import DecisionService, NotServing, Rejected
from lakehouse.decisions.store import PartitionBusy
from lakehouse.errors import BrokerUnavailableError

log = logging.getLogger(__name__)
#: The largest body accepted (a transaction is a few hundred bytes).
MAX_BODY = 64 * 1024


def _error(status: int, error: str, message: str, field: str | None = None, retry: bool = False) -> JSONResponse:
    headers = {"Retry-After": "1"} if retry else None
    return JSONResponse({"error": error, "field": field, "message": message}, status_code=status, headers=headers)


def create_app(service: DecisionService) -> FastAPI:
    from redis.exceptions import RedisError

    app = FastAPI(title="Fraudlake decisions", docs_url=None, redoc_url=None)

    async def body_of(request: Request) -> bytes | JSONResponse:
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error(413, "too_large", f"the body is over {MAX_BODY} bytes")
        return body

    @app.post("/v1/decisions")
    async def decide(request: Request) -> JSONResponse:
        body = await body_of(request)
        if isinstance(body, JSONResponse):
            return body
        explain = request.query_params.get("explain") == "features"
        key = request.headers.get("idempotency-key") or None
        try:
            answer = await run_in_threadpool(service.decide, body, key, explain=explain)
        except Rejected as exc:
            return _error(exc.status, exc.reason, str(exc), exc.field)
        except (PartitionBusy, LaneBusy) as exc:
            return _error(503, "busy", str(exc), retry=True)
        except NotServing as exc:
            return _error(503, "no_model", str(exc), retry=True)
        except BrokerUnavailableError as exc:
            log.error("the broker did not take a decision's record: %s", exc)
            return _error(503, "broker_unavailable", f"the broker did not acknowledge the record: {exc}", retry=True)
        except RedisError as exc:
            log.error("the online store did not answer: %s", exc)
            return _error(503, "store_unavailable", f"the online store did not answer: {exc}", retry=True)
        except Exception as exc:  # a defect: said plainly, logged with its trace; a retry replays a taken decision
            log.exception("a decision failed")
            return _error(500, "internal_error", f"the decision failed: {type(exc).__name__}: {exc}")
        return JSONResponse(answer)

    @app.post("/v1/echo")
    async def echo(request: Request) -> JSONResponse:
        body = await body_of(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            value = await run_in_threadpool(json.loads, body)
        except ValueError:
            return _error(400, "malformed_json", "the body is not JSON")
        return JSONResponse({"echo": value})

    @app.get("/v1/health")
    async def health() -> JSONResponse:
        try:
            model = await run_in_threadpool(service.model)
        except NotServing as exc:
            return _error(503, "no_model", str(exc), retry=True)
        return JSONResponse({"status": "ok", "model_version": model.version, "threshold": model.threshold})

    return app

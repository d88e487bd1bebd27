"""The HTTP API: ``create_app(settings)`` builds the FastAPI app (see ``api.app``).

app          create_app: the FastAPI app; its lifespan opens the database, encoders, indexes
routes/      the v1 routes, one module per resource
schemas/     request and response bodies (``*Create`` in, ``*Public`` out), by resource
deps         dependencies: the app and service contexts, the auth checks (``Annotated``)
auth         API keys: sha256 digests, each with a scope and the collections it reaches (Grant)
security     browser-facing defences: Host allow-list, cross-site writes, headers, throttle
admission    admission control: bounded work in flight, a bounded queue, fast 503 refusals
middleware   what every request needs: an id, a body limit, a log line, a metric
lean         the lean request path of the hot routes: validate the body, call the endpoint
convert      wire <-> service conversions: base64 payloads, form JSON, terms, hits
payload      binary vector payloads: base64 float32 in JSON, or a NumPy ``.npy`` array
errors       every error as ``application/problem+json`` (RFC 9457) with a stable ``type``
openapi      state_limits: the limits in force, stated in the OpenAPI schema
metrics      Prometheus metrics, in a registry owned by one app
"""

from __future__ import annotations

from latentspace.api.app import create_app

__all__ = ["create_app"]

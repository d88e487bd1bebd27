"""The v1 routes, one module per resource.

collections  /v1/collections: create, list; /{name}: get, delete, /flush, /reindex
items        /v1/collections/{name}/items: upsert, list, get, patch, delete, /image,
             /lookup (by hash); /images (multipart upload), /vectors (raw vectors)
bulk         /v1/collections/{name}/items:get, :delete, :scroll, :count: many items by
             ids or by a filter
search       /v1/collections/{name}/search, /search/image, /path, /directions
documents    /v1/collections/{name}/documents: RAG documents chunked into items; delete
duplicates   /v1/collections/{name}/duplicates: clusters, /check, /resolve; and /trash
             (list, /restore)
classify     /v1/collections/{name}/classify (zero-shot), /autotag (a background job)
maps         /v1/collections/{name}/map: fit it (a background job), read it
migrate      /v1/collections/{name}/migrate (a background job), /adapters
snapshots    /v1/collections/{name}/snapshot and /restore: a collection into one file, back
jobs         /v1/collections/{name}/jobs, /v1/jobs/{job_id} (progress) and its /cancel
embeddings   /v1/embeddings and /v1/models, compatible with the OpenAI API
rerank       /v1/rerank, in the shape of Cohere's and Jina's rerank APIs
health       /healthz, /readyz and /metrics: liveness, readiness, Prometheus
qdrant       /qdrant: the Qdrant REST API (collections, points, query, snapshots) over the
             same collections
"""

"""RAG documents: chunked into items that remember their document."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from latentspace.api.convert import problem_of
from latentspace.api.deps import AuthorizedRoute, ServiceDep, WriteDep
from latentspace.api.errors import NOT_FOUND, all_failed
from latentspace.api.schemas import DocumentsCreate, DocumentsResult, DocumentStatus
from latentspace.service import documents

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/collections/{name}/documents",
    tags=["documents"],
    route_class=AuthorizedRoute,
    responses=NOT_FOUND,
)


@router.post(
    "",
    dependencies=[WriteDep],
    response_model=DocumentsResult,
    summary="Chunk, embed and store documents",
)
def create_documents(
    request: Request, name: str, body: DocumentsCreate, ctx: ServiceDep
) -> DocumentsResult | JSONResponse:
    """Each document is split into chunks of at most ``chunk.size`` characters or tokens
    (sentence boundaries preferred, ``chunk.overlap`` shared between neighbours); chunk
    ``i`` becomes item ``{id}#{i}`` with ``document_id`` and offsets in its metadata.
    Posting a document again replaces its chunks. When every document failed the answer
    is a problem (422 or 413) with the per-document statuses in ``errors``."""
    results = documents.ingest_documents(
        ctx,
        name,
        [documents.NewDocument(d.id, d.text, d.metadata) for d in body.documents],
        size=body.chunk.size,
        overlap=body.chunk.overlap,
        unit=body.chunk.unit,
    )
    answer = DocumentsResult(
        documents=[
            DocumentStatus(
                id=r.id,
                status="error" if r.error else "ok",
                chunks=r.chunks,
                created=r.created,
                updated=r.updated,
                unchanged=r.unchanged,
                removed=r.removed,
                error=problem_of(r.error) if r.error else None,
            )
            for r in results
        ]
    )
    failures = [r.error for r in results if r.error is not None]
    if results and len(failures) == len(results):
        detail = f"no document was stored; first error: {failures[0]}"
        statuses = [d.model_dump(mode="json") for d in answer.documents]
        return all_failed(request, failures, detail, statuses)
    return answer


@router.delete(
    "/{document_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[WriteDep],
    summary="Delete a document's chunks",
)
def delete_document(name: str, document_id: str, ctx: ServiceDep) -> Response:
    documents.delete(ctx, name, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

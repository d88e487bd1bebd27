"""latentspace from the RAG frameworks: each module is a store over a running server's HTTP API.

    remote       the HTTP calls every integration shares (sync and async), problems as errors
    langchain    ``LatentspaceVectorStore``, a LangChain ``VectorStore``
    llamaindex   ``LatentspaceVectorStore``, a LlamaIndex ``BasePydanticVectorStore``
    haystack     ``LatentspaceDocumentStore`` and ``LatentspaceEmbeddingRetriever`` (Haystack 2+)
    haystack_filters  Haystack's filter syntax translated to the server's filter DSL

Each needs its framework installed (the ``langchain``, ``llamaindex`` and ``haystack``
extras); importing this package imports none of them.
"""

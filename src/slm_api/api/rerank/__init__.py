"""POST /v1/rerank (and /rerank, /v2/rerank): a query's documents scored by a cross-encoder, in
the shape Jina's and Cohere's rerank APIs answer (and llama-server's, which clients reuse)."""

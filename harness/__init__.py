"""Loopback stand-ins that the test suite and the benchmarks share, kept out of both so that
neither reaches into the other: an OpenAI-compatible model server (`llm_server`), throwaway
PostgreSQL and Redis servers (`servers`), hostile documents (`bombs`) and a labelled retrieval
set with known answer chunks (`retrieval_set`). Nothing in the app imports this package, and the
wheel does not ship it."""

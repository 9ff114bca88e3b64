"""The names of the streaming queries. A name is also the query's default checkpoint folder, so
these strings are a contract: renaming one makes a job start again from nothing.
"""

#: The scorer's query (``fraudlake stream score``).
SCORE_QUERY = "score"


def ingest_query_name(layer: str, stream: str) -> str:
    """The name (and default checkpoint folder) of an ingest query: ``bronze_transactions``, ``silver_users``…"""
    return f"{layer}_{stream}"


#: The scorer's second query: scored rows → ``gold.scored_transactions``.
SCORE_LANDING_QUERY = "score_landing"

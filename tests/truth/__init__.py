"""Issue 14: the committed status says what happened (adoption, provenance, retries, commits, edges)."""

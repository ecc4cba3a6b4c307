"""Publishing: the answers, the report, the documents and the SQL store, from a finished run."""

"""The engine entry points (``process_writes``, ``process_request``) as thin glue to the logic."""

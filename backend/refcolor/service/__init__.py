"""The backend service: the socket server, its job queue and worker, wire encoding of results."""

"""qruntime's light client package. `qruntime.experiments` talks to a qruntime server over HTTP with
the standard library only: it needs none of the server's dependencies."""

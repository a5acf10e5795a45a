"""The local multi-node rehearsal of the Kubernetes deployment (``cluster/README.md``)."""

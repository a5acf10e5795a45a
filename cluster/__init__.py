"""Deployment: the container image, KubeRay manifests and the local multi-node rehearsal.

Not part of the installed package; run its modules from the repository root
(``python -m cluster.render``, ``python -m cluster.local.rehearsal``).
"""

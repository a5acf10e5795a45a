"""Load testing for the marketplace: Locust users, load shapes, scenarios, a runner and its
report (``load/README.md``)."""

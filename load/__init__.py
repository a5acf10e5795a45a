"""Load scenarios for the marketplace: Locust users, load shapes, scenarios and a runner."""

"""Fixtures shared by the integration tests beyond the module that defines them."""

from tests.integration.test_events import broker

__all__ = ["broker"]  # the per-test RabbitMQ names (test_events, test_fault_plans)

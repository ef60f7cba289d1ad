"""The parts of the load test (loadtest/locustfile.py): what is discovered from the service before the users
start, the payloads the users send, the checks of every answer, and the run's own record.

Only the standard library: the load test runs against a deployed instance from any machine with Locust.
"""

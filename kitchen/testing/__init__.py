"""Contract test suites for kitchen's ports and its event store.

Each suite is a class with ``__test__ = False`` that a test module subclasses per
implementation, overriding one fixture. They ship with the package so that an adapter
written outside this repository can prove it keeps the same contract. Importing them
requires pytest.
"""

"""salespulse: the shared domain package.

Warehouse schema and access, sample data and import, features and analytics. Both ``training`` and
``service`` import this package; neither imports the other.
"""

__version__ = "0.1.0"

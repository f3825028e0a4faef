"""A standalone issuer speaking the stock protocol, for testing boxes without Odoo.

Run it from the repository root: ``python -m mock_issuer --data DIR <command>``.
"""

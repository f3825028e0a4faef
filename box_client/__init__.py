"""A box client that does and shows what a stock Odoo 17 IoT box does about HTTPS.

Run it from the repository root: ``python -m box_client --state-dir DIR <command>``.
"""

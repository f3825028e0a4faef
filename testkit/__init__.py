"""Test helpers shared by the Odoo suite (``tests/``) and the standalone one
(``tests_standalone/``): plain Python and cryptography, no Odoo, no pytest, so
both can import them. Nothing in the product imports this package."""

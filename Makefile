# The two commands of the README. Everything else lives in tools/.
.PHONY: run test bench

# Install into .venv, then start the mock issuer with a CA in ./mock-issuer-data.
run:
	bash tools/run.sh

# Every suite: ruff, pytest (current libraries and Odoo 17's pins), the Odoo suite when Odoo 17 is installed.
test:
	bash tools/test.sh

# Issuance speed against the crypto limit (README: Performance).
bench:
	bash tools/bench.sh

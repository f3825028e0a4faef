"""The README stays true to the code."""

from conftest import ROOT

from iot_pki import codes


def test_readme_explains_every_error_code_and_refusal_reason():
    readme = (ROOT / "README.md").read_text()
    for code in (*codes.BOX_ERRORS, *codes.REFUSALS):
        assert f"`{code}" in readme, f"README misses {code}"


def test_readme_commands_exist():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test"):
        assert f"make {target}" in readme and f"\n{target}:" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()

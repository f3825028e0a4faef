"""Run the stock Odoo 17 IoT box code, unmodified, on a sandboxed box platform.

Used by ``test_stock_box.py``, run with a python that imports Odoo 17::

    python stock_box_driver.py CONFIG_JSON

CONFIG_JSON: ``{"helpers": path of addons/hw_drivers/tools/helpers.py,
"sandbox": a folder, "issuer_port": port of the mock issuer (TLS),
"calls": [[function name, [arguments]], ...]}``.

``helpers.py`` is loaded by file path (``odoo.addons.hw_drivers`` would start
the box's drivers), then only the edges of the box platform are redirected:

- DNS: ``www.odoo.com:443`` resolves to ``127.0.0.1:<issuer_port>``; every
  other name resolves as usual;
- files: ``HOME`` is ``<sandbox>/home`` (the box's ``*.conf`` files), and the
  module's ``Path`` re-roots ``/etc/ssl`` and ``/root_bypass_ramdisks`` under
  ``<sandbox>/root``;
- OS commands: ``sudo`` (logs its arguments to ``<sandbox>/sudo.log``, exits 0)
  and ``systemctl`` (logs to ``<sandbox>/systemctl.log``, exits 3: hostapd is
  inactive) come first on ``PATH``;
- the 3 s pause before restarting nginx is recorded, not slept;
- ``netifaces`` (network interfaces, unused by the certificate code) is a stub
  when the Odoo python lacks it.

The last line on stdout is ``STOCK_BOX_RESULT <json>``: the result of each call,
the names looked up through DNS and the pauses asked for.
"""

import importlib.util
import json
import logging
import os
import pathlib
import shlex
import socket
import sys
import types

RESULT_PREFIX = "STOCK_BOX_RESULT "
STOCK_HOST = ("www.odoo.com", 443)
REROOTED = (pathlib.PurePosixPath("/etc/ssl"), pathlib.PurePosixPath("/root_bypass_ramdisks"))
BOX_DIRS = (
    "/etc/ssl/certs",
    "/etc/ssl/private",
    "/root_bypass_ramdisks/etc/ssl/certs",
    "/root_bypass_ramdisks/etc/ssl/private",
)
CALLS = ("save_conf_server", "check_certificate", "load_certificate", "get_certificate_status")


def install_commands(sandbox):
    """``sudo`` and ``systemctl`` stubs, first on PATH."""
    bin_dir = sandbox / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, exit_code in (("sudo", 0), ("systemctl", 3)):
        log = shlex.quote(str(sandbox / f"{name}.log"))
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexit {exit_code}\n')
        script.chmod(0o755)
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


def install_dns(issuer_port, lookups):
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        lookups.append(f"{host}:{port}")
        if (host, int(port or 0)) == STOCK_HOST:
            return real_getaddrinfo("127.0.0.1", issuer_port, *args, **kwargs)
        return real_getaddrinfo(host, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


def sandbox_path_class(root):
    """A stand-in for ``pathlib.Path`` that puts the box's system files under ``root``."""

    class SandboxPath:
        home = staticmethod(pathlib.Path.home)  # reads HOME, already the sandbox's
        cwd = staticmethod(pathlib.Path.cwd)

        def __new__(cls, *parts):
            path = pathlib.Path(*parts)
            if any(path == top or top in path.parents for top in REROOTED):
                return root / path.relative_to("/")
            return path

    return SandboxPath


def load_helpers(path):
    try:
        import netifaces  # noqa: F401 - only checking that it is there
    except ImportError:
        stub = types.ModuleType("netifaces")

        def missing(name):
            raise RuntimeError(f"netifaces.{name}: netifaces is not installed (stub of stock_box_driver)")

        stub.__getattr__ = missing
        sys.modules["netifaces"] = stub
    spec = importlib.util.spec_from_file_location("stock_helpers", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def jsonable(value):
    if isinstance(value, tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if hasattr(value, "name") and hasattr(value, "value"):  # an Enum (CertificateStatus)
        return value.name
    return value


def main(config):
    sandbox = pathlib.Path(config["sandbox"]).resolve()
    root = sandbox / "root"
    home = sandbox / "home"
    home.mkdir(parents=True, exist_ok=True)
    for directory in BOX_DIRS:
        (root / directory.lstrip("/")).mkdir(parents=True, exist_ok=True)
    os.environ["HOME"] = str(home)
    install_commands(sandbox)
    lookups = []
    install_dns(config["issuer_port"], lookups)

    helpers = load_helpers(config["helpers"])
    helpers.Path = sandbox_path_class(root)
    pauses = []
    helpers.time = types.SimpleNamespace(sleep=pauses.append)

    results = []
    for name, args in config["calls"]:
        if name not in CALLS:
            raise SystemExit(f"not a stock box call this driver runs: {name}")
        results.append(jsonable(getattr(helpers, name)(*args)))
    print(RESULT_PREFIX + json.dumps({"results": results, "lookups": lookups, "pauses": pauses}), flush=True)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main(json.loads(sys.argv[1])))

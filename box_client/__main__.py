"""python -m box_client --state-dir DIR {configure,check,doctor}"""

import argparse
import ipaddress
import sys
from urllib.parse import urlsplit

from iot_pki.https_check import DEFAULT_PORT
from iot_pki.protocol import ProtocolError, parse_pairing

from .box import Box, BoxConfig, BoxError
from .doctor import PASS, Doctor, parse_dns_server


def _url(value):
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{value!r} is not an http(s) URL")
    return value.strip().rstrip("/")


def _ipv4(value):
    try:
        return str(ipaddress.IPv4Address(value.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an IPv4 address (A.B.C.D)") from None


def _pairing(value):
    """The pairing string a database shows: URL|TOKEN|DB_UUID|ENTERPRISE_CODE."""
    try:
        url, token, db_uuid, enterprise_code = parse_pairing(value)
    except ProtocolError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return _url(url), token, db_uuid, enterprise_code


def _dns_server(value):
    try:
        return parse_dns_server(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _port(value):
    if not value.strip().isdigit() or not 0 < int(value) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port (1 to 65535)")
    return int(value)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m box_client",
        description="Do and show what a stock Odoo 17 IoT box does to get its HTTPS certificate.",
    )
    parser.add_argument("--state-dir", required=True, metavar="DIR", help="the box's folder (config, certificate, key)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    configure = commands.add_parser("configure", help="store what a box knows")
    configure.add_argument("--server", type=_url, help="URL of the Odoo database the box is connected to")
    configure.add_argument("--issuer", type=_url, help="base URL of the issuer (default: the server)")
    configure.add_argument("--db-uuid", help="database UUID")
    configure.add_argument("--enterprise-code", help="enterprise (subscription) code")
    configure.add_argument("--ip", type=_ipv4, help="the box's IPv4 address (default: detected)")
    configure.add_argument(
        "--pairing", type=_pairing, metavar="'URL|TOKEN|UUID|CODE'", help="the pairing string shown by the database"
    )
    configure.add_argument("--ca-bundle", help="PEM file of CAs trusted for an https issuer")
    mode = configure.add_mutually_exclusive_group()
    mode.add_argument(
        "--csr",
        dest="csr",
        action="store_true",
        default=None,
        help="make the key on the box and send a CSR (the key never leaves the box)",
    )
    mode.add_argument(
        "--no-csr", dest="csr", action="store_false", help="let the issuer make the key, as stock boxes do"
    )

    commands.add_parser("check", help="check the certificate and get a new one if needed, as a box does")

    doctor = commands.add_parser(
        "doctor",
        help="check, in order, what the box needs for HTTPS and say what to do (changes nothing)",
    )
    doctor.add_argument(
        "--dns",
        type=_dns_server,
        metavar="SERVER[:PORT]",
        help="resolve the box's HTTPS name with this DNS server (default: the system resolver)",
    )
    doctor.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"the box's HTTPS port (default {DEFAULT_PORT})"
    )
    doctor.add_argument(
        "--ca-file",
        metavar="FILE",
        help="PEM file of the roots to verify the box's HTTPS with (default: the system trust store "
        "and the issuer's root)",
    )
    return parser


def cmd_configure(args, box):
    try:
        config = box.load_config()
    except BoxError as exc:
        # configure is how a box is repaired: start again from what this call says.
        print(f"note: the stored configuration was unusable and is replaced ({'; '.join(exc.details)})")
        config = BoxConfig()
    if args.pairing:
        config.server, config.token, config.db_uuid, config.enterprise_code = args.pairing
    for name in ("server", "issuer", "db_uuid", "enterprise_code", "ip", "csr", "ca_bundle"):
        value = getattr(args, name)
        if value is not None:
            setattr(config, name, value.strip() if isinstance(value, str) else value)
    box.save_config(config)
    code = config.enterprise_code
    print(f"server: {config.server or '-'}")
    print(f"issuer: {config.issuer_url or '-'}")
    print(f"db_uuid: {config.db_uuid or '-'}")
    print(f"enterprise_code: {(code[:4] + '...') if code else '-'}")
    print(f"ip: {config.ip or '(detected)'}")
    print(f"mode: {'csr (key made on the box)' if config.csr else 'legacy (key made by the issuer)'}")
    return 0


def cmd_check(args, box):
    result = box.check()
    print(result.line)
    for detail in result.details:
        print(detail)
    return 0 if result.ok else 1


def cmd_doctor(args, box):
    results = Doctor(box, dns_server=args.dns, port=args.port, ca_file=args.ca_file).run()
    # The lines hold a dash and names from files and answers: never fail on a terminal's encoding.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")
    for result in results:
        print(result.line)
    return 0 if all(result.status == PASS for result in results) else 1


def main(argv=None):
    args = build_parser().parse_args(argv)
    box = Box(args.state_dir)
    try:
        return {"configure": cmd_configure, "check": cmd_check, "doctor": cmd_doctor}[args.command](args, box)
    except BoxError as exc:
        print(exc.code)
        for detail in exc.details:
            print(detail)
        return 1
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or args.state_dir}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

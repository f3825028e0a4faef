"""python -m mock_issuer --data DIR {init,register,revoke,list,serve}"""

import argparse
import logging
import sys
from pathlib import Path
from urllib.parse import urlsplit

from iot_pki import ca as ca_module
from iot_pki import keys, profile, ratelimit
from iot_pki.eligibility import DATABASE_TYPE_KEYS, SUBSCRIPTION_STATE_KEYS, DatabaseFacts

from . import store


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m mock_issuer",
        description="A standalone IoT HTTPS certificate issuer speaking the stock Odoo 17 box protocol.",
    )
    parser.add_argument("--data", required=True, metavar="DIR", help="folder of the CA, settings and registry")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser("init", help="create the CA and the settings (never overwrites)")
    init.add_argument("--zone", required=True, help="DNS zone of box names, e.g. iot.example.com")
    init.add_argument(
        "--public-url",
        required=True,
        help="base URL embedded in certificates (CA and CRL downloads), e.g. http://pki.example.com",
    )
    init.add_argument(
        "--validity-days",
        type=int,
        default=profile.DEFAULT_VALIDITY_DAYS,
        help=f"certificate lifetime, 1 to {profile.MAX_VALIDITY_DAYS} (default %(default)s)",
    )
    init.add_argument(
        "--legacy-key-type",
        choices=keys.LEGACY_KEY_TYPES,
        default="rsa2048",
        help="key made for stock boxes (default %(default)s)",
    )
    init.add_argument(
        "--uuid-rate-limit",
        default="10/60",
        metavar="BURST/SECONDS",
        help="failed attempts per database UUID: a burst, then one per SECONDS (default %(default)s)",
    )
    init.add_argument(
        "--client-rate-limit",
        default="30/10",
        metavar="BURST/SECONDS",
        help="failed attempts per client address (default %(default)s)",
    )
    init.add_argument("--organization", default="iot_https", help="organization in the CA names")
    init.add_argument("--country", default="BE", help="two-letter country in the CA names")

    register = commands.add_parser("register", help="add or update a database")
    register.add_argument("--db-uuid", required=True)
    register.add_argument("--enterprise-code", required=True)
    register.add_argument("--database-type", required=True, choices=DATABASE_TYPE_KEYS)
    register.add_argument("--subscription-state", required=True, choices=SUBSCRIPTION_STATE_KEYS)
    line = register.add_mutually_exclusive_group(required=True)
    line.add_argument(
        "--iot-box-line", dest="iot_box_line", action="store_true", help="the subscription has an IoT box line"
    )
    line.add_argument(
        "--no-iot-box-line", dest="iot_box_line", action="store_false", help="the subscription has no IoT box line"
    )

    revoke = commands.add_parser("revoke", help="revoke a certificate by serial (hex)")
    revoke.add_argument("--serial", required=True)

    commands.add_parser("list", help="list issued certificates and recent requests")

    serve = commands.add_parser("serve", help="answer certificate requests over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8070)
    serve.add_argument("--tls-cert", help="serve HTTPS with this certificate chain (PEM)")
    serve.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes answering on the port: one per core for the best throughput (default %(default)s)",
    )
    serve.add_argument(
        "--key-pool",
        type=int,
        default=32,
        metavar="N",
        help="legacy-mode keys made ahead of time, in memory only (0: on demand; default %(default)s)",
    )
    return parser


def _load_ca(data_dir, create=False, **names):
    directory = data_dir / store.CA_DIR
    if create:
        return ca_module.CertificateAuthority.load_or_create(directory, store.passphrase(), **names)
    if not (directory / ca_module.ROOT_CERT).exists():
        raise store.SetupError(f"no CA in {directory}: run `python -m mock_issuer --data {data_dir} init` first")
    return ca_module.CertificateAuthority.load(directory, store.passphrase())


def cmd_init(args, data_dir):
    try:
        uuid_limit = ratelimit.Limit.parse(args.uuid_rate_limit)
        client_limit = ratelimit.Limit.parse(args.client_rate_limit)
    except ValueError as exc:
        raise store.SetupError(str(exc)) from None
    settings = store.IssuerSettings(
        profile.ProfileSettings(args.zone, args.public_url, args.validity_days, args.legacy_key_type),
        uuid_limit,
        client_limit,
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    if (data_dir / store.SETTINGS_FILE).exists():
        current = store.load_settings(data_dir)
        print(
            f"settings exist in {data_dir}, unchanged: zone={current.profile.zone} "
            f"public_url={current.profile.public_url}"
        )
        if current != settings:
            print("note: the options given differ and were ignored; init never changes existing settings")
    else:
        store.write_settings(data_dir, settings)
        print(f"settings written: zone={settings.profile.zone} public_url={settings.profile.public_url}")
    existed = (data_dir / store.CA_DIR / ca_module.ROOT_CERT).exists()
    authority = _load_ca(data_dir, create=True, organization=args.organization, country=args.country)
    store.Registry(data_dir)
    print(("CA exists, unchanged: " if existed else "CA created: ") + authority.root_cert.subject.rfc4514_string())
    if not profile.is_public_name(urlsplit(settings.profile.public_url).hostname):
        print(
            "note: the public URL is not a public DNS name; fine for tests, but certificates embedding it "
            "do not meet the Baseline Requirements"
        )
    return 0


def cmd_register(args, data_dir):
    store.load_settings(data_dir)
    facts = DatabaseFacts(
        uuid=args.db_uuid.strip(),
        enterprise_code=args.enterprise_code.strip(),
        database_type=args.database_type,
        subscription_state=args.subscription_state,
        has_iot_box_line=args.iot_box_line,
    )
    if not facts.uuid or not facts.enterprise_code:
        raise store.SetupError("--db-uuid and --enterprise-code must not be empty")
    revoked = store.Registry(data_dir).register_database(facts)
    print(
        f"registered {facts.uuid}: {facts.database_type}, subscription {facts.subscription_state}, "
        f"{'with' if facts.has_iot_box_line else 'without'} IoT box line"
    )
    if revoked:
        print(f"revoked {revoked} certificate(s): the database is no longer entitled to them")
    return 0


def cmd_revoke(args, data_dir):
    store.load_settings(data_dir)
    if store.Registry(data_dir).revoke(args.serial):
        print(f"revoked {args.serial}")
        return 0
    print(f"no valid certificate with serial {args.serial}", file=sys.stderr)
    return 1


def cmd_list(args, data_dir):
    store.load_settings(data_dir)
    registry = store.Registry(data_dir)
    print("certificates:")
    for serial, db_uuid, subject, not_before, not_after, mode, state, _fingerprint in registry.certificates():
        print(f"  {serial} {state:8} {mode:6} {subject} {not_before} -> {not_after} db={db_uuid}")
    print("requests:")
    for at, client, db_uuid, mode, decision, detail in registry.requests()[-50:]:
        print(f"  {at} {client} {decision} mode={mode or '-'} db={db_uuid or '-'} {detail or ''}".rstrip())
    return 0


def cmd_serve(args, data_dir):
    from .server import serve

    if bool(args.tls_cert) != bool(args.tls_key):
        raise store.SetupError("--tls-cert and --tls-key go together")
    settings = store.load_settings(data_dir)
    authority = _load_ca(data_dir)
    if not 0 <= args.key_pool <= 1024:
        raise store.SetupError("--key-pool must be between 0 and 1024")
    if not 1 <= args.workers <= 64:
        raise store.SetupError("--workers must be between 1 and 64")
    store.Registry(data_dir)  # creates the tables now: a storage problem is reported before serving
    serve(
        authority,
        settings,
        lambda: store.Registry(data_dir),
        args.host,
        args.port,
        args.tls_cert,
        args.tls_key,
        key_pool=args.key_pool,
        workers=args.workers,
    )
    return 0


COMMANDS = {
    "init": cmd_init,
    "register": cmd_register,
    "revoke": cmd_revoke,
    "list": cmd_list,
    "serve": cmd_serve,
}


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    try:
        return COMMANDS[args.command](args, Path(args.data))
    except (store.SetupError, profile.ProfileError, ca_module.CAError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or args.data}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

from . import (
    test_access,
    test_ca,
    test_check_https,
    test_core_in_odoo,
    test_download_logs,
    test_hardening,
    test_i18n,
    test_models,
    test_neutralize,
    test_setup,
    test_ui,
    test_x509,
)

from . import controllers, models
from .models.iot_issuer import ensure_ca_on_install


def _post_init_hook(env):
    ensure_ca_on_install(env)

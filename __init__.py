import socket

from . import controllers, models, wizard
from .models.iot_issuer import ensure_ca_on_install

# A burst of boxes (a shop restarting after a power cut) opens dozens of
# connections at once.
LISTEN_BACKLOG = 1024


def _post_init_hook(env):
    ensure_ca_on_install(env)


def _post_load():
    """Widen the listen backlog of Odoo's prefork server.

    Odoo 17 listens with a backlog of 8 per worker (16 with 2 workers): 50 boxes
    asking at once overflow it and the kernel resets connections, which a box
    shows as ERR_IOT_HTTPS_LOAD_REQUEST_EXCEPTION. With the database preloaded
    (``-d``), this runs in the master before the workers fork; otherwise in the
    first worker that loads it. The socket is shared, so once is enough. The
    kernel caps the value at net.core.somaxconn.
    """
    from odoo.service import server

    prefork = getattr(server, "server", None)
    listener = getattr(prefork, "socket", None)
    if isinstance(prefork, server.PreforkServer) and isinstance(listener, socket.socket):
        listener.listen(LISTEN_BACKLOG)

from . import iot_connect_wizard

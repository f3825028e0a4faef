from . import (
    iot_box,
    iot_certificate,
    iot_connect_wizard,
    iot_database,
    iot_device,
    iot_issuer,
    iot_request,
    iot_subscription,
    iot_subscription_line,
    product_template,
    res_config_settings,
)

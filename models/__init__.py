from . import (
    iot_box,
    iot_certificate,
    iot_database,
    iot_device,
    iot_issuer,
    iot_rate_bucket,
    iot_request,
    iot_subscription,
    iot_subscription_line,
    ir_http,
    product_template,
    res_config_settings,
)

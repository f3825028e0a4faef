{
    "name": "IoT HTTPS Certificates",
    "version": "17.0.1.0.0",
    "category": "Internet of Things (IoT)",
    "summary": "Issue HTTPS certificates to Odoo IoT boxes from your own database",
    "description": """
Self-hosted issuer of the wildcard HTTPS certificates Odoo 17 IoT boxes ask
for at start: keeps IoT boxes, subscriptions and registered databases,
answers the boxes' certificate requests (stock protocol), registers boxes.
""",
    "author": "iot_https developers",
    "license": "LGPL-3",
    "depends": ["base", "web", "product"],
    "external_dependencies": {"python": ["cryptography", "requests"]},
    "data": [
        "security/iot_https_security.xml",
        "security/ir.model.access.csv",
        "data/ir_cron_data.xml",
        "views/iot_box_views.xml",
        "views/iot_subscription_views.xml",
        "views/iot_database_views.xml",
        "views/iot_certificate_views.xml",
        "views/iot_request_views.xml",
        "views/iot_connect_wizard_views.xml",
        "views/product_template_views.xml",
        "views/res_config_settings_views.xml",
        "views/iot_https_menus.xml",
    ],
    "post_init_hook": "_post_init_hook",
    "post_load": "_post_load",
    "installable": True,
    "application": True,
    "development_status": "Alpha",
}

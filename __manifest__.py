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
    "depends": ["base", "web"],
    "external_dependencies": {"python": ["cryptography", "requests"]},
    "data": [],
    "installable": True,
    "application": True,
    "development_status": "Alpha",
}

-- A neutralized copy of the database cannot issue certificates, and boxes
-- paired with the production database cannot register with it.
INSERT INTO ir_config_parameter (key, value)
    VALUES ('iot_https.issuance_enabled', 'False')
    ON CONFLICT (key) DO UPDATE SET value = 'False';
UPDATE ir_config_parameter SET value = md5(random()::text || clock_timestamp()::text)
    WHERE key = 'iot_https.pairing_token';

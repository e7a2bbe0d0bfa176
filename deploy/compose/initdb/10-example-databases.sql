-- The example warehouse and application databases next to the state store (run once, by the
-- postgres image, when its data volume is empty).
CREATE DATABASE warehouse;
CREATE DATABASE app;

\connect warehouse
CREATE TABLE customers (
    customer_id BIGINT PRIMARY KEY,
    email       TEXT NOT NULL,
    plan        TEXT NOT NULL,
    churn_risk  DOUBLE PRECISION NOT NULL,
    ltv         NUMERIC(12, 2) NOT NULL
);
INSERT INTO customers
SELECT i,
       'customer' || i || '@example.com',
       (ARRAY['free', 'pro', 'enterprise'])[1 + i % 3],
       (i % 100) / 100.0,
       (i % 1000) * 12.5
FROM generate_series(1, 10000) AS i;

{{ config(materialized='view') }}
-- One row per (train, channel, hour of sensor time): how many readings, how many flagged, and
-- the value's spread. Portable SQL (DuckDB, PostgreSQL, Redshift): CASE instead of FILTER.
SELECT train, channel, date_trunc('hour', ts) AS hour,
       count(*) AS readings,
       sum(CASE WHEN quality = 'good' THEN 1 ELSE 0 END) AS good_readings,
       sum(CASE WHEN quality <> 'good' THEN 1 ELSE 0 END) AS flagged_readings,
       min(value) AS min_value, max(value) AS max_value,
       avg(value) AS avg_value, stddev_samp(value) AS stddev_value
FROM {{ source('lake', 'telemetry') }}
GROUP BY train, channel, date_trunc('hour', ts)

{{ config(materialized='view') }}
-- One row per alarm: when it was raised, escalated, acknowledged and cleared, with the kind of
-- the alert that raised it and how long handling took.
WITH steps AS (
    SELECT alarm_id, train, alert_key, max(severity) AS severity,
           min(anomaly_id) AS anomaly_id,
           min(CASE WHEN state = 'raised' THEN changed_at END) AS raised_at,
           min(CASE WHEN state = 'escalated' THEN changed_at END) AS escalated_at,
           min(CASE WHEN state = 'acknowledged' THEN changed_at END) AS acknowledged_at,
           min(CASE WHEN state = 'cleared' THEN changed_at END) AS cleared_at
    FROM {{ source('lake', 'alarms') }}
    GROUP BY alarm_id, train, alert_key
)
SELECT s.alarm_id, s.train, s.alert_key, s.severity, a.category, s.anomaly_id,
       s.raised_at, s.escalated_at, s.acknowledged_at, s.cleared_at,
       extract(epoch FROM s.acknowledged_at - s.raised_at) AS seconds_to_acknowledge,
       extract(epoch FROM s.cleared_at - s.raised_at) AS seconds_to_clear
FROM steps s
LEFT JOIN (SELECT anomaly_id, min(category) AS category
           FROM {{ source('lake', 'alerts') }} GROUP BY anomaly_id) a
       ON a.anomaly_id = s.anomaly_id

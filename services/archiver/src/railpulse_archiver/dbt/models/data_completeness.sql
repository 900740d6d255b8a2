{{ config(materialized='view') }}
-- One row per (train, day of sensor time): frames received against frames expected. Expected
-- frames come from the train's sequence counter (strictly increasing by one per frame): a gap is
-- counted on the day the data resumes. A counter that starts again (a new epoch) is a counter of
-- its own: a frame is (train, epoch, seq).
WITH frames AS (
    SELECT DISTINCT train, COALESCE(epoch, 0) AS epoch, seq, ts
    FROM {{ source('lake', 'telemetry') }}
), ordered AS (
    SELECT train, seq, ts, date_trunc('day', ts) AS day,
           seq - lag(seq) OVER (PARTITION BY train, epoch ORDER BY seq) AS step
    FROM frames
)
SELECT train, day,
       count(*) AS frames_received,
       count(*) + CAST(sum(CASE WHEN step > 1 THEN step - 1 ELSE 0 END) AS BIGINT) AS frames_expected,
       CAST(sum(CASE WHEN step > 1 THEN step - 1 ELSE 0 END) AS BIGINT) AS frames_missing,
       CAST(sum(CASE WHEN step > 1 THEN 1 ELSE 0 END) AS BIGINT) AS gaps,
       CAST(max(CASE WHEN step > 1 THEN step - 1 ELSE 0 END) AS BIGINT) AS longest_gap_frames,
       round(100.0 * count(*)
             / (count(*) + sum(CASE WHEN step > 1 THEN step - 1 ELSE 0 END)), 2) AS completeness_pct,
       min(ts) AS first_frame, max(ts) AS last_frame
FROM ordered
GROUP BY train, day

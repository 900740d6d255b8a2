"""One condition, one anomaly: the findings of one frame grouped by the channel they are about.

The rules and the forest each keep their own state under their own key (`limit:bearing_temp_2`,
`peers:bearing_temp_2`, `model:bearing_temp_2`), but a crew member sees a condition, not a rule:
one hot bearing beyond its limit and beyond its peers is one alarm. So the findings of one frame
that name the same channel become one anomaly keyed by that channel, carrying every finding as
`evidence`; its severity, category, score and message are those of the most severe finding (the
first of equals: rules before the forest, in the order they were found).
"""

from __future__ import annotations

from collections.abc import Sequence

from railpulse_shared.contracts import MAX_CHANNELS, Anomaly, Attribution, Evidence

__all__ = ["condition_of", "merge_conditions"]


def condition_of(rule_key: str) -> tuple[str, str]:
    """(source, channel) of a finding's own key: `peers:bearing_temp_2` → (`peers`,
    `bearing_temp_2`). A channel name may itself hold a colon; a source never does."""
    source, sep, channel = rule_key.partition(":")
    return (source, channel) if sep else ("", rule_key)


def merge_conditions(findings: Sequence[Anomaly]) -> list[Anomaly]:
    """The findings of one frame (one train, one sequence number), one anomaly per channel, in
    the order each channel was first named."""
    groups: dict[str, list[tuple[str, Anomaly]]] = {}
    for finding in findings:
        source, channel = condition_of(finding.alert_key)
        groups.setdefault(channel, []).append((source or finding.category.value, finding))
    return [_merge(channel, group) for channel, group in groups.items()]


def _merge(channel: str, group: list[tuple[str, Anomaly]]) -> Anomaly:
    top = max(group, key=lambda g: g[1].severity)[1]  # max keeps the first of equals
    channels: dict[str, Attribution] = {}
    for _, finding in [g for g in group if g[1] is top] + [g for g in group if g[1] is not top]:
        for attribution in finding.channels:
            channels.setdefault(attribution.channel, attribution)
    versions = dict.fromkeys(f.model_version for _, f in group if f.model_version)
    return Anomaly(
        anomaly_id=f"{top.train}:{top.frame_seq}:{channel}",
        train=top.train,
        ts_ms=top.ts_ms,
        frame_seq=top.frame_seq,
        category=top.category,
        severity=top.severity,
        score=top.score,
        threshold=top.threshold,
        alert_key=channel,
        channels=list(channels.values())[:MAX_CHANNELS],
        model_version="+".join(versions),
        message=top.message,
        received_ms=top.received_ms,
        ingested_ms=top.ingested_ms,
        detected_ms=top.detected_ms,
        evidence=[
            Evidence(
                source=source,
                category=f.category,
                severity=f.severity,
                message=f.message,
                score=f.score,
                threshold=f.threshold,
            )
            for source, f in group
        ],
    )

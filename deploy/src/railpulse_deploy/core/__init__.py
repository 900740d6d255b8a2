"""The core stack: what every service shares (key, streams, queues, buckets, catalog,
warehouse, IoT, network, cluster, alarm topic)."""

from railpulse_deploy.core.stack import CoreRefs, CoreStack

__all__ = ["CoreRefs", "CoreStack"]

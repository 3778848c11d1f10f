"""Write the Helm chart's topic list and Kafka ACLs from the shared code (`make chart-topics`).

The chart's KafkaTopics must carry exactly the partitions and configs of
`rts_common.contracts.TOPICS`, and its KafkaUsers exactly the ACLs of `rts_common.acls`
(which the local broker's secured mode grants too); Helm can only read files inside the
chart, so both are generated into it and a test fails when a file and the code disagree.
In the ACLs, `{group}` stands for the gateway's consumer group (`gateway.groupId`) and
topic names get the chart's `kafka.topicPrefix`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from rts_common.acls import SERVICES, service_acls
from rts_common.contracts import TOPICS

FILES = Path(__file__).resolve().parent.parent / "helm/streaming/files"
CHART_TOPICS = FILES / "topics.yaml"
CHART_ACLS = FILES / "acls.yaml"
HEADER = "# Generated from {source} by `make chart-topics`: do not edit.\n"
GROUP = "{group}"


def render_topics() -> str:
    topics = [
        {
            "name": spec.name,
            "partitions": spec.partitions,
            "key": spec.key,
            "config": dict(spec.config),
        }
        for spec in TOPICS
    ]
    return HEADER.format(source="rts_common.contracts") + yaml.safe_dump(
        {"topics": topics}, sort_keys=False, width=100
    )


def render_acls() -> str:
    users = {
        service: [
            {
                "resource": {"type": acl.resource, "name": acl.name, "patternType": acl.pattern},
                "operations": list(acl.operations),
            }
            for acl in service_acls(service, group_id=GROUP)
        ]
        for service in SERVICES
    }
    return HEADER.format(source="rts_common.acls") + yaml.safe_dump(
        {"acls": users}, sort_keys=False, width=100
    )


def main() -> int:
    files = {CHART_TOPICS: render_topics(), CHART_ACLS: render_acls()}
    if "--check" in sys.argv[1:]:
        stale = [p for p, text in files.items() if (p.read_text() if p.exists() else "") != text]
        for path in stale:
            print(f"{path} is stale: run `make chart-topics`", file=sys.stderr)
        return 1 if stale else 0
    for path, text in files.items():
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

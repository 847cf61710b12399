#!/usr/bin/env bash
# Runs one of Kafka's own command-line tools (what bin/kafka-TOOL.sh runs in the
# binary distribution) on the class path of the jars fetch.sh caches.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# tool name | where the default --bootstrap-server goes (pre: first, post: last,
# -: never) | its client config file option (-: none) | main classes, newest location
# first (the first one the jars hold wins).
TOOLS="
topics              pre  --command-config  org.apache.kafka.tools.TopicCommand kafka.admin.TopicCommand
consumer-groups     pre  --command-config  org.apache.kafka.tools.consumer.group.ConsumerGroupCommand kafka.admin.ConsumerGroupCommand
configs             pre  --command-config  org.apache.kafka.tools.ConfigCommand kafka.admin.ConfigCommand
console-consumer    pre  --consumer.config org.apache.kafka.tools.consumer.ConsoleConsumer kafka.tools.ConsoleConsumer
console-producer    pre  --producer.config org.apache.kafka.tools.ConsoleProducer kafka.tools.ConsoleProducer
broker-api-versions pre  --command-config  org.apache.kafka.tools.BrokerApiVersionsCommand kafka.admin.BrokerApiVersionsCommand
acls                pre  --command-config  org.apache.kafka.tools.AclCommand kafka.admin.AclCommand
get-offsets         pre  --command-config  org.apache.kafka.tools.GetOffsetShell kafka.tools.GetOffsetShell
log-dirs            pre  --command-config  org.apache.kafka.tools.LogDirsCommand kafka.admin.LogDirsCommand
metadata-quorum     pre  --command-config  org.apache.kafka.tools.MetadataQuorumCommand
features            pre  --command-config  org.apache.kafka.tools.FeatureCommand kafka.admin.FeatureCommand
transactions        pre  --command-config  org.apache.kafka.tools.TransactionsCommand
delete-records      pre  --command-config  org.apache.kafka.tools.DeleteRecordsCommand kafka.admin.DeleteRecordsCommand
leader-election     pre  --admin.config    org.apache.kafka.tools.LeaderElectionCommand kafka.admin.LeaderElectionCommand
reassign-partitions pre  --command-config  org.apache.kafka.tools.reassign.ReassignPartitionsCommand kafka.admin.ReassignPartitionsCommand
producer-perf-test  pre  --producer.config org.apache.kafka.tools.ProducerPerformance
consumer-perf-test  pre  --consumer.config org.apache.kafka.tools.ConsumerPerformance
cluster             post --config          org.apache.kafka.tools.ClusterTool kafka.tools.ClusterTool
storage             -    -                 org.apache.kafka.tools.StorageTool kafka.tools.StorageTool
dump-log            -    -                 org.apache.kafka.tools.DumpLogSegments kafka.tools.DumpLogSegments
"

usage() {
  cat <<EOF
usage: infra/kafka/kafka-tool.sh TOOL [ARGS...]
       infra/kafka/kafka-tool.sh --list

Runs Kafka's TOOL (as bin/kafka-TOOL.sh would) with the jars of
\$DRIFTLINE_KAFKA_VERSION (default 3.9.1), fetching them first if needed. TOOL is
one of the names below, or a fully qualified main class.
If ARGS has no --bootstrap-server (nor --bootstrap-controller, --broker-list,
--help) and the tool takes one, \$DRIFTLINE_TOOL_BOOTSTRAP is used, else the broker
recorded in \${DRIFTLINE_BROKER_DIR:-~/.cache/driftline/broker}; with it,
\$DRIFTLINE_TOOL_CONFIG (a client properties file) goes to the tool's config option
(--command-config, --consumer.config, ...). \`driftline kafka\` sets both from the
DRIFTLINE_* settings. Logs go to stderr at WARN.
JVM options: \$DRIFTLINE_TOOL_JAVA_OPTS (default "-Xmx512m").

tools: $(awk 'NF {printf "%s ", $1}' <<<"$TOOLS")
EOF
}

case "${1:-}" in
  "" ) usage >&2; exit 2 ;;
  -h | --help | help) usage; exit 0 ;;
esac
tool=$1
shift

libs=$("$KAFKA_INFRA_DIR/fetch.sh")

if [[ $tool == --list ]]; then
  while read -r name _ _ classes; do
    [[ -n $name ]] || continue
    # shellcheck disable=SC2086  # split the class list
    printf '%-20s %s\n' "$name" "$(kafka_main_class $classes || echo '(not in this version)')"
  done <<<"$TOOLS"
  exit 0
fi

inject=-
config_opt=-
if [[ $tool == *.* ]]; then
  main=$tool
else
  line=$(awk -v t="$tool" '$1 == t' <<<"$TOOLS")
  [[ -n $line ]] || { printf 'kafka-tool: unknown tool %s\n' "$tool" >&2; usage >&2; exit 2; }
  read -r _ inject config_opt classes <<<"$line"
  # shellcheck disable=SC2086  # split the class list
  main=$(kafka_main_class $classes) || {
    printf 'kafka-tool: Kafka %s has none of: %s\n' "$KAFKA_VERSION" "$classes" >&2
    exit 2
  }
fi

args=("$@")
if [[ $inject != - ]]; then
  for a in "$@"; do
    case "$a" in
      --bootstrap-server | --bootstrap-server=* | --bootstrap-controller | --bootstrap-controller=* | \
        --broker-list | --broker-list=* | -h | --help | --version) inject=- ;;
    esac
  done
fi
if [[ $inject != - ]]; then
  port_file=$BROKER_DIR_DEFAULT/broker.port
  bs=${DRIFTLINE_TOOL_BOOTSTRAP:-}
  extra=()
  if [[ -n $bs ]]; then
    if [[ -n ${DRIFTLINE_TOOL_CONFIG:-} && $config_opt != - ]]; then
      extra=("$config_opt" "$DRIFTLINE_TOOL_CONFIG")
    fi
  elif [[ -f $port_file ]]; then
    bs=127.0.0.1:$(<"$port_file")
    if [[ -f $BROKER_DIR_DEFAULT/security && " $* " != *" --command-config "* ]]; then
      printf 'kafka-tool: the broker in %s is secured (SASL_SSL); connect as admin with --command-config %s\n' \
        "$BROKER_DIR_DEFAULT" "$BROKER_DIR_DEFAULT/secrets/admin.properties" >&2
    fi
  else
    printf 'kafka-tool: no broker recorded in %s; pass --bootstrap-server (driftline kafka uses DRIFTLINE_BOOTSTRAP_SERVERS)\n' "$BROKER_DIR_DEFAULT" >&2
  fi
  if [[ -n $bs ]]; then
    if [[ $inject == pre ]]; then
      args=(--bootstrap-server "$bs" "${extra[@]}" "$@")
    else
      args=("$@" --bootstrap-server "$bs" "${extra[@]}")
    fi
  fi
fi

read -r -a jvm <<<"${DRIFTLINE_TOOL_JAVA_OPTS:--Xmx512m}"
# shellcheck disable=SC2046  # one option per line
exec java "${jvm[@]}" -Djava.awt.headless=true $(kafka_log_opts tools-) \
  -cp "$libs/*" "$main" "${args[@]}"

# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared settings and helpers of fetch.sh, broker.sh, cluster.sh and kafka-tool.sh
# (sourced, not run).
#
# Environment variables these scripts read (all optional):
#   DRIFTLINE_KAFKA_VERSION        Kafka jars to use (3.9.1)
#   DRIFTLINE_KAFKA_CACHE          jar cache (<repo>/.cache/kafka): <version>/libs
#   DRIFTLINE_BROKER_DIR           broker directory (~/.cache/driftline/broker: outside
#                                  the checkout; $XDG_CACHE_HOME/driftline/broker if set)
#   DRIFTLINE_BROKER_PORT          broker.sh: port or auto (DIR's last port, else 9092)
#   DRIFTLINE_BROKER_SECURITY      broker.sh up: sasl_ssl or plaintext (DIR's mode, else plaintext)
#   DRIFTLINE_BROKER_TIMEOUT       broker.sh up: seconds to wait for readiness (90)
#   DRIFTLINE_BROKER_STOP_TIMEOUT  broker.sh down: seconds before SIGKILL (30)
#   DRIFTLINE_BROKER_HEAP          broker JVM heap ("-Xmx1g -Xms256m"; a cluster node
#                                  "-Xmx512m -Xms128m")
#   DRIFTLINE_BROKER_PROPERTIES    extra key=value server properties (white space between)
#   DRIFTLINE_TOOL_JAVA_OPTS       kafka-tool.sh JVM options ("-Xmx512m")
#   DRIFTLINE_TOOL_BOOTSTRAP       kafka-tool.sh: bootstrap servers instead of DIR's broker
#   DRIFTLINE_TOOL_CONFIG          kafka-tool.sh: a client config file for the tool
#                                  (`driftline kafka` sets both from the DRIFTLINE_* settings)
#   MAVEN_OPTS                     read by mvn in fetch.sh (e.g. -Dmaven.repo.local=DIR)

# The running script's name (broker, cluster, ...): the prefix of its log lines.
SCRIPT_NAME=$(basename "$0" .sh)

KAFKA_INFRA_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$KAFKA_INFRA_DIR/../.." && pwd)

# Kafka version of the jars (Maven Central, org.apache.kafka:kafka_2.13).
KAFKA_VERSION=${DRIFTLINE_KAFKA_VERSION:-3.9.1}
# Where fetched jars go: $KAFKA_CACHE/<version>/libs.
KAFKA_CACHE=${DRIFTLINE_KAFKA_CACHE:-$REPO_ROOT/.cache/kafka}
# Default broker directory (config, data, pid, port, log): outside the checkout, one per
# machine like the default port 9092. driftline.broker.directory() has the same rule.
BROKER_DIR_DEFAULT=${DRIFTLINE_BROKER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/driftline/broker}

# A line to stderr, prefixed with the script's name; die: that line, then exit 1.
# (fetch.sh keeps its own log.)
log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() { log "$*"; exit 1; }

# The subcommand of broker.sh and cluster.sh ($1: up, down, status or logs) into $cmd,
# which the caller then shifts off; the caller's usage and exit 0 for -h, --help and
# help, usage on stderr and exit 2 for anything else.
read_subcommand() {
  cmd=${1:-}
  case "$cmd" in
    up | down | status | logs) ;;
    -h | --help | help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
}

kafka_libs() { printf '%s\n' "$KAFKA_CACHE/$KAFKA_VERSION/libs"; }

# The Kafka major version decides the logging back end: 3.x reload4j, 4.x log4j2.
kafka_major() { printf '%s\n' "${KAFKA_VERSION%%.*}"; }

# JVM flags that point both logging back ends (reload4j for 3.x, log4j2 for 4.x)
# at our config; each ignores the other's property. $1 is "" (broker) or "tools-".
kafka_log_opts() {
  printf '%s\n' \
    "-Dlog4j.configuration=file:$KAFKA_INFRA_DIR/${1}log4j.properties" \
    "-Dlog4j2.configurationFile=$KAFKA_INFRA_DIR/${1}log4j2.properties"
}

# The first of the given main classes that this version's jars contain (see the
# class index fetch.sh writes); several tools moved from kafka.* (Scala) to
# org.apache.kafka.tools.* (Java) between 3.x and 4.x.
kafka_main_class() {
  local index c
  index=$(kafka_libs)/classes.txt
  for c in "$@"; do
    if grep -qxF -- "$c" "$index"; then
      printf '%s\n' "$c"
      return 0
    fi
  done
  return 1
}

# Is process $1 alive (a zombie counts as dead)?
pid_alive() {
  local stat
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# The contents of file $1; false if there is no such file.
read_file() { [[ -f $1 ]] && cat "$1"; }

# The value of key $2 in the key=value file $1 (a cluster node's node.conf); false if absent.
conf_value() {
  local key value
  while IFS='=' read -r key value; do
    [[ $key == "$2" ]] && { printf '%s\n' "$value"; return 0; }
  done <"$1"
  return 1
}

# The pid of the broker of directory $1 (broker.sh's DIR, a cluster's node<K>) if it runs:
# the pid $1/broker.pid records, alive, running kafka.Kafka on $1/server.properties.
broker_pid() {
  local pid cmdline
  pid=$(read_file "$1/broker.pid") || return 1
  pid_alive "$pid" || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *kafka.Kafka*"$1/server.properties"* ]] || return 1
  printf '%s\n' "$pid"
}

# Take the lock of directory $1 on file descriptor 8, waiting up to $2 seconds, or die
# (the sourcing script's die).
lock_dir() {
  exec 8>"$1/.lock"
  flock -w "$2" 8 || die "could not lock $1"
}

# Seconds since $1 (microseconds, from ${EPOCHREALTIME/./}), one decimal.
elapsed() {
  local d=$((${EPOCHREALTIME/./} - $1))
  printf '%d.%d\n' $((d / 1000000)) $((d / 100000 % 10))
}

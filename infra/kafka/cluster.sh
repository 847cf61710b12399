#!/usr/bin/env bash
# A local Apache Kafka cluster of N KRaft nodes (each one broker and controller in one
# JVM, the N controllers forming the quorum) on 127.0.0.1, from the jars fetch.sh caches:
# replication factor 3, min.insync.replicas 2 (server-cluster.properties). Each node is
# run by broker.sh in DIR/node<K>; this script picks the ports, writes each node's
# node.conf, starts the nodes together and waits for all of them.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
usage: infra/kafka/cluster.sh up|down|status|logs [options]

  up       start every node (fetching the jars first if needed) and wait until each
           serves requests; prints the bootstrap servers 127.0.0.1:P1,127.0.0.1:P2,...
           as the only line on stdout. Nodes of DIR that already run are kept; the
           others are started (on their recorded ports).
  down     stop every node (SIGTERM to all at once, up to 30 s each, then SIGKILL)
  status   one line per node (state, pid, address), the bootstrap servers and the
           active controller; exit 0 if every node runs, 3 if not
  logs     print the end of each node's broker.log (--node K: only that one)

options:
  --nodes N       up: how many nodes (default: DIR's count, else 3; at least 3)
  --dir DIR       cluster directory, one node<K>/ per node (env DRIFTLINE_BROKER_DIR,
                  default ~/.cache/driftline/broker)
  --timeout SECS  up: how long to wait for the nodes (env DRIFTLINE_BROKER_TIMEOUT, 120)
  --purge         down: also delete DIR
  --node K        logs: only node K
  -n, --lines N   logs: how many lines (default 50 per node)

Ports: the ones DIR used last when all are free, else free ports (two per node:
client and controller). A node of DIR is a broker.sh directory: infra/kafka/broker.sh
up|down|status --dir DIR/node<K> starts, stops or checks that node alone, on its
ports (a fault harness restarts nodes that way). Heap per node: DRIFTLINE_BROKER_HEAP
(default "-Xmx512m -Xms128m").
EOF
}

read_subcommand "$@"
shift

dir=$BROKER_DIR_DEFAULT
nodes=''
timeout=${DRIFTLINE_BROKER_TIMEOUT:-120}
purge=0
lines=50
only=''
while (($#)); do
  case "$1" in
    --nodes) nodes=${2:?--nodes needs a value}; shift ;;
    --nodes=*) nodes=${1#*=} ;;
    --dir) dir=${2:?--dir needs a value}; shift ;;
    --dir=*) dir=${1#*=} ;;
    --timeout) timeout=${2:?--timeout needs a value}; shift ;;
    --timeout=*) timeout=${1#*=} ;;
    --purge) purge=1 ;;
    --node) only=${2:?--node needs a value}; shift ;;
    -n | --lines) lines=${2:?--lines needs a value}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) log "unknown argument: $1"; usage >&2; exit 2 ;;
  esac
  shift
done
[[ -z $nodes || $nodes =~ ^[0-9]+$ ]] || die "bad node count: $nodes"
[[ -z $nodes ]] || ((nodes >= 3)) || die "a cluster has at least 3 nodes (a single one: broker.sh)"
[[ $timeout =~ ^[0-9]+$ ]] || die "bad timeout: $timeout"

dir=$(realpath -m -- "$dir")
marker=$dir/.driftline-cluster
count_file=$dir/nodes
broker=("$KAFKA_INFRA_DIR/broker.sh")
probe=(python3 "$KAFKA_INFRA_DIR/kprobe.py")

# The node count DIR records (empty when none).
recorded_nodes() { read_file "$count_file" || true; }

node_dir() { printf '%s/node%s\n' "$dir" "$1"; }

# The pid of node K if it runs (common.sh's broker_pid, as broker.sh's running_pid).
node_pid() { broker_pid "$(node_dir "$1")"; }

# key=value of node K's node.conf
node_conf() { conf_value "$(node_dir "$1")/node.conf" "$2"; }

bootstrap_list() {
  local k out=()
  for ((k = 1; k <= n; k++)); do out+=("127.0.0.1:$(node_conf "$k" port)"); done
  local IFS=,
  printf '%s\n' "${out[*]}"
}

# Ports for every node: the recorded ones when each is free (or held by its running
# node), else 2n fresh free ports. Writes node.conf of every node.
assign_ports() {
  local k d ports=() cports=() keep=1 voters='' p c
  for ((k = 1; k <= n; k++)); do
    d=$(node_dir "$k")
    if [[ -f $d/node.conf ]]; then
      p=$(node_conf "$k" port) c=$(node_conf "$k" controller_port)
      if node_pid "$k" >/dev/null || { "${probe[@]}" port-free "$p" && "${probe[@]}" port-free "$c"; }; then
        ports+=("$p") cports+=("$c")
        continue
      fi
    fi
    keep=0
  done
  if ((!keep)); then
    for ((k = 1; k <= n; k++)); do
      node_pid "$k" >/dev/null && die "node $k runs but another node's ports are taken; down first"
    done
    read -r -d '' -a fresh < <("${probe[@]}" free-port $((2 * n)) && printf '\0') || true
    ports=("${fresh[@]:0:n}") cports=("${fresh[@]:n:n}")
    log "ports: ${ports[*]} (controllers ${cports[*]})"
  fi
  for ((k = 1; k <= n; k++)); do
    voters+="${voters:+,}$k@127.0.0.1:${cports[k - 1]}"
  done
  for ((k = 1; k <= n; k++)); do
    d=$(node_dir "$k")
    mkdir -p "$d"
    printf 'node_id=%s\nvoters=%s\nport=%s\ncontroller_port=%s\n' \
      "$k" "$voters" "${ports[k - 1]}" "${cports[k - 1]}" >"$d/node.conf"
    printf '%s\n' "$cluster_id" >"$d/cluster.id"
  done
}

cmd_up() {
  local k d pid rc start started=() waited=0
  "$KAFKA_INFRA_DIR/fetch.sh" >/dev/null
  mkdir -p "$dir"
  if [[ -f $dir/.driftline-broker ]]; then
    die "$dir holds a single-node broker (broker.sh); use another --dir, or down --purge it first"
  fi
  touch "$marker"
  lock_dir "$dir" $((timeout + 60))
  n=$(recorded_nodes)
  if [[ -n $n && -n $nodes && $nodes != "$n" ]] && [[ -f $dir/node1/data/meta.properties ]]; then
    die "$dir holds a cluster of $n nodes, not $nodes; use another --dir, or down --purge it first"
  fi
  n=${nodes:-${n:-3}}
  printf '%s\n' "$n" >"$count_file"
  cluster_id=$(read_file "$dir/cluster.id") || {
    cluster_id=$("${probe[@]}" cluster-id)
    printf '%s\n' "$cluster_id" >"$dir/cluster.id"
  }
  assign_ports
  start=${EPOCHREALTIME/./}
  for ((k = 1; k <= n; k++)); do
    node_pid "$k" >/dev/null && continue
    d=$(node_dir "$k")
    "${broker[@]}" up --dir "$d" --port "$(node_conf "$k" port)" --no-wait >/dev/null ||
      die "node $k did not start; see $d/broker.log"
    started+=("$k")
  done
  for k in "${started[@]}"; do
    d=$(node_dir "$k")
    pid=$(<"$d/broker.pid")
    rc=0
    "${probe[@]}" wait "$(node_conf "$k" port)" "$pid" "$timeout" || rc=$?
    if ((rc != 0)); then
      log "node $k $( ((rc == 2)) && echo "exited during start-up" || echo "did not answer within ${timeout}s"); last 30 lines of $d/broker.log:"
      tail -n 30 "$d/broker.log" >&2 || true
      stop_nodes
      exit 1
    fi
    waited=1
  done
  if ((waited)); then
    log "$n nodes ready in $(elapsed "$start") s (started: ${started[*]})"
  else
    log "already running ($n nodes)"
  fi
  bootstrap_list
}

# SIGTERM every running node at once (broker.sh down each, in parallel).
stop_nodes() {
  local k pids=()
  for ((k = 1; k <= n; k++)); do
    [[ -d $(node_dir "$k") ]] || continue
    "${broker[@]}" down --dir "$(node_dir "$k")" 2> >(sed "s/^/node $k: /" >&2) &
    pids+=($!)
  done
  local rc=0 p
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return "$rc"
}

cmd_down() {
  local k
  if [[ ! -f $marker ]]; then
    log "no cluster directory at $dir"
    return 0
  fi
  lock_dir "$dir" $((timeout + 60))
  n=$(recorded_nodes)
  n=${n:-0}
  stop_nodes
  if ((purge)); then
    purge_dir
  fi
}

# Delete DIR, but only if it holds nothing that this script and broker.sh did not put there.
purge_dir() {
  local e name k ours=" .driftline-cluster .lock nodes cluster.id "
  for ((k = 1; k <= n; k++)); do ours+="node$k "; done
  for e in "$dir"/* "$dir"/.[!.]*; do
    [[ -e $e ]] || continue
    name=${e##*/}
    [[ $ours == *" $name "* ]] || die "not deleting $dir: it holds $name, which cluster.sh did not create"
  done
  for ((k = 1; k <= n; k++)); do
    [[ -d $(node_dir "$k") ]] || continue
    "${broker[@]}" down --purge --dir "$(node_dir "$k")" 2>/dev/null ||
      die "not deleting $dir: broker.sh refused to purge $(node_dir "$k")"
  done
  rm -rf "$dir"
  log "deleted $dir"
}

cmd_status() {
  local k pid port state rc=0 running_ports=() quorum
  n=$(recorded_nodes)
  [[ -n $n && -f $marker ]] || { printf 'state: stopped\nnodes: 0\ndir: %s\n' "$dir"; return 3; }
  for ((k = 1; k <= n; k++)); do
    port=$(node_conf "$k" port 2>/dev/null) || port=''
    if pid=$(node_pid "$k"); then
      if [[ -n $port ]] && "${probe[@]}" probe "$port"; then
        state=running
        running_ports+=("$port")
      else
        state="not answering"
        rc=3
      fi
    else
      pid=- state=stopped rc=3
    fi
    printf 'node %s: %s, pid %s, 127.0.0.1:%s, controller port %s\n' \
      "$k" "$state" "$pid" "$port" "$(node_conf "$k" controller_port 2>/dev/null || echo '?')"
  done
  printf 'state: %s\nbootstrap: %s\n' \
    "$( ((rc == 0)) && echo running || echo degraded)" "$(bootstrap_list)"
  if ((${#running_ports[@]})) && quorum=$("${probe[@]}" quorum "${running_ports[@]}"); then
    printf 'quorum: %s (leader = active controller, a node id)\n' "$quorum"
  fi
  printf 'version: %s\ndir: %s\n' "$(read_file "$dir/node1/version" || true)" "$dir"
  ((${#running_ports[@]})) || rc=3
  return "$rc"
}

cmd_logs() {
  local k
  n=$(recorded_nodes)
  [[ -n $n ]] || die "no cluster in $dir"
  for ((k = 1; k <= n; k++)); do
    [[ -z $only || $only == "$k" ]] || continue
    printf '===== node %s: %s =====\n' "$k" "$(node_dir "$k")/broker.log"
    tail -n "$lines" "$(node_dir "$k")/broker.log" 2>/dev/null || true
  done
}

n=0
cluster_id=''
"cmd_$cmd"

#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft, broker and controller in one process) on
# 127.0.0.1 for development and tests, run from the jars fetch.sh caches. It also runs
# each node of a local cluster (cluster.sh): a DIR holding a node.conf is such a node.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
usage: infra/kafka/broker.sh up|down|status|logs [options]

  up       start the broker (fetching the jars first if needed) and wait until it
           serves requests; prints its bootstrap address 127.0.0.1:PORT as the only
           line on stdout. If the broker of DIR already runs, just prints that.
  down     stop it (SIGTERM, up to 30 s for a clean shutdown, then SIGKILL)
  status   print state, pid, bootstrap, version; exit 0 if running, 3 if not
  logs     print the end of DIR/broker.log

options:
  --port N|auto   broker port (env DRIFTLINE_BROKER_PORT). Default: the port DIR
                  used last, else 9092. auto or 0 picks a free port.
  --security[=sasl_ssl|plaintext]
                  up: the broker port speaks SASL_SSL (SCRAM-SHA-512 over TLS) with
                  ACL authorization (env DRIFTLINE_BROKER_SECURITY). certs.sh makes
                  DIR/tls (CA: DIR/tls/ca.pem); users admin (super user), scorer,
                  trainer and app get random passwords in DIR/secrets/USER.password
                  (0600), DIR/secrets/admin.properties is a Kafka tool client config
                  (--command-config). A DIR keeps the mode it was formatted with;
                  default: that mode, else plaintext. See docs/broker.md, Security.
  --dir DIR       broker directory: config, data, pid, port, log
                  (env DRIFTLINE_BROKER_DIR, default ~/.cache/driftline/broker)
  --timeout SECS  up: how long to wait for the broker (env DRIFTLINE_BROKER_TIMEOUT, 90)
  --purge         down: also delete DIR
  --no-wait       up: start the broker and print its address without waiting for it
                  (cluster.sh starts every node before waiting: a node of a cluster
                  serves only once a majority of the controllers runs)
  -n, --lines N   logs: how many lines (default 100)
  -f, --follow    logs: keep following

environment: DRIFTLINE_KAFKA_VERSION (default 3.9.1), DRIFTLINE_KAFKA_CACHE,
  DRIFTLINE_BROKER_HEAP (default "-Xmx1g -Xms256m"; a cluster node "-Xmx512m -Xms128m"),
  DRIFTLINE_BROKER_STOP_TIMEOUT (30),
  DRIFTLINE_BROKER_JIT (default "-XX:TieredStopAtLevel=1": the C1 compiler only;
  set it empty for the JVM's C2 too. See docs/broker.md, JIT.)
  DRIFTLINE_BROKER_PROPERTIES: extra server properties, key=value separated by white
  space, written after the template's (so they win); read on every up

A node of a cluster (DIR/node.conf, written by cluster.sh: node_id, voters, port,
controller_port) is configured from server-cluster.properties, on the ports node.conf
names (up fails if one is taken), plaintext only.
EOF
}

read_subcommand "$@"
shift

opt_port=${DRIFTLINE_BROKER_PORT:-}
opt_security=${DRIFTLINE_BROKER_SECURITY:-}
dir=$BROKER_DIR_DEFAULT
timeout=${DRIFTLINE_BROKER_TIMEOUT:-90}
stop_timeout=${DRIFTLINE_BROKER_STOP_TIMEOUT:-30}
purge=0
no_wait=0
lines=100
follow=0
while (($#)); do
  case "$1" in
    --port) opt_port=${2:?--port needs a value}; shift ;;
    --port=*) opt_port=${1#*=} ;;
    --security) opt_security=sasl_ssl ;;
    --security=*) opt_security=${1#*=} ;;
    --dir) dir=${2:?--dir needs a value}; shift ;;
    --dir=*) dir=${1#*=} ;;
    --timeout) timeout=${2:?--timeout needs a value}; shift ;;
    --timeout=*) timeout=${1#*=} ;;
    --purge) purge=1 ;;
    --no-wait) no_wait=1 ;;
    -n | --lines) lines=${2:?--lines needs a value}; shift ;;
    -f | --follow) follow=1 ;;
    -h | --help) usage; exit 0 ;;
    *) log "unknown argument: $1"; usage >&2; exit 2 ;;
  esac
  shift
done
[[ -z $opt_port || $opt_port == auto || $opt_port =~ ^[0-9]+$ ]] || die "bad port: $opt_port"
[[ $timeout =~ ^[0-9]+$ ]] || die "bad timeout: $timeout"
opt_security=${opt_security,,}
[[ -z $opt_security || $opt_security == sasl_ssl || $opt_security == plaintext ]] ||
  die "bad security mode: $opt_security (sasl_ssl or plaintext)"

dir=$(realpath -m -- "$dir")
pid_file=$dir/broker.pid
port_file=$dir/broker.port
cport_file=$dir/controller.port
log_file=$dir/broker.log
config=$dir/server.properties
marker=$dir/.driftline-broker
probe=(python3 "$KAFKA_INFRA_DIR/kprobe.py")
# Secured broker (up --security): its mode, INTERNAL port, certificates, secrets.
security_file=$dir/security
iport_file=$dir/internal.port
tls_dir=$dir/tls
secrets_dir=$dir/secrets
scram_users="admin scorer trainer app"
security=plaintext
# A node of a cluster (cluster.sh): its id, the quorum's voters and its two ports.
node_file=$dir/node.conf
node_id='' node_voters='' node_port='' node_cport=''

# Read DIR/node.conf (key=value lines) when DIR is a node of a cluster; false if not.
read_node() {
  [[ -f $node_file ]] || return 1
  node_id=$(conf_value "$node_file" node_id) || true
  node_voters=$(conf_value "$node_file" voters) || true
  node_port=$(conf_value "$node_file" port) || true
  node_cport=$(conf_value "$node_file" controller_port) || true
  [[ $node_id =~ ^[0-9]+$ && $node_port =~ ^[0-9]+$ && $node_cport =~ ^[0-9]+$ && -n $node_voters ]] ||
    die "$node_file is incomplete (node_id, voters, port, controller_port)"
}
is_node=0
if read_node; then is_node=1; fi
if [[ -f $dir/.driftline-cluster ]]; then
  die "$dir holds a cluster of several nodes: use infra/kafka/cluster.sh (or driftline broker)"
fi

# The pid of the broker that DIR recorded, if that process still runs it.
running_pid() { broker_pid "$dir"; }

# Pick the broker port: --port/env, else what DIR used last, else 9092.
choose_port() {
  local want=$opt_port recorded
  if ((is_node)); then
    "${probe[@]}" port-free "$node_port" || die "port $node_port of node $node_id is in use"
    printf '%s\n' "$node_port"
    return
  fi
  recorded=$(read_file "$port_file") || true
  if [[ -z $want ]]; then
    want=${recorded:-9092}
    if [[ -n $recorded ]] && ! "${probe[@]}" port-free "$want"; then
      log "port $want (used last by $dir) is taken; picking a free one"
      want=auto
    fi
  fi
  if [[ $want == auto || $want == 0 ]]; then
    "${probe[@]}" free-port
    return
  fi
  "${probe[@]}" port-free "$want" || die "port $want on 127.0.0.1 is in use (another broker? try --port auto)"
  printf '%s\n' "$want"
}

# The mode DIR runs in: --security/env if given (refused if DIR was formatted in
# the other mode), else the recorded one, else plaintext. Sets $security.
resolve_security() {
  local recorded
  if ((is_node)); then
    [[ -z $opt_security || $opt_security == plaintext ]] || die "a cluster node is plaintext only"
    security=plaintext
    return
  fi
  recorded=$(read_file "$security_file") || recorded=plaintext
  security=${opt_security:-$recorded}
  if [[ $security != "$recorded" ]]; then
    [[ -f $dir/data/meta.properties ]] &&
      die "$dir holds a $recorded broker; use another --dir, or down --purge it first"
    if [[ $security == plaintext ]]; then rm -f "$security_file"; fi
  fi
  if [[ $security == sasl_ssl ]]; then printf '%s\n' "$security" >"$security_file"; fi
}

# Readiness probe (kprobe.py probe|wait PORT [PID SECS]): a plain broker answers on
# its port; a secured one on its INTERNAL port, over TLS with the broker certificate.
kprobe_ready() {
  local action=$1 port=$2
  shift 2
  if [[ $security == sasl_ssl ]]; then
    port=$(read_file "$iport_file") || return 1
    "${probe[@]}" "$action" "$port" "$@" "$tls_dir"
  else
    "${probe[@]}" "$action" "$port" "$@"
  fi
}

# Certificates (certs.sh, idempotent), one random password per SCRAM user
# (kept once made: the users are created with them when the storage is formatted)
# and the admin client config of Kafka's tools. Secrets are never printed.
prepare_security() {
  local u f
  "$KAFKA_INFRA_DIR/certs.sh" "$tls_dir" >/dev/null || die "certs.sh failed"
  (umask 077 && mkdir -p "$secrets_dir")
  chmod 700 "$secrets_dir"
  for u in $scram_users; do
    f=$secrets_dir/$u.password
    [[ -s $f ]] && continue
    [[ -f $dir/data/meta.properties ]] &&
      die "$f is missing, but the storage already holds user $u; down --purge $dir to start over"
    (umask 077 && openssl rand -hex 24 >"$f") || die "could not write $f"
  done
  (
    umask 077
    printf '%s\n' \
      "# Kafka tool client config of $dir (kafka-tool.sh TOOL --command-config THIS)" \
      security.protocol=SASL_SSL sasl.mechanism=SCRAM-SHA-512 \
      "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$(<"$secrets_dir/admin.password")\";" \
      ssl.truststore.type=PEM "ssl.truststore.location=$tls_dir/ca.pem" \
      >"$secrets_dir/admin.properties"
  )
}

choose_controller_port() {
  local port=$1 c
  if ((is_node)); then
    "${probe[@]}" port-free "$node_cport" ||
      die "controller port $node_cport of node $node_id is in use"
    printf '%s\n' "$node_cport"
    return
  fi
  c=$(read_file "$cport_file") || true
  if [[ -n $c && $c != "$port" ]] && "${probe[@]}" port-free "$c"; then
    printf '%s\n' "$c"
    return
  fi
  for c in $("${probe[@]}" free-port 2); do
    [[ $c != "$port" ]] && { printf '%s\n' "$c"; return; }
  done
}

# A free port for the INTERNAL listener of a secured broker: DIR's last one if free.
choose_internal_port() {
  local port=$1 cport=$2 c
  c=$(read_file "$iport_file") || true
  if [[ -n $c && $c != "$port" && $c != "$cport" ]] && "${probe[@]}" port-free "$c"; then
    printf '%s\n' "$c"
    return
  fi
  for c in $("${probe[@]}" free-port 3); do
    [[ $c != "$port" && $c != "$cport" ]] && { printf '%s\n' "$c"; return; }
  done
}

write_config() {
  local port=$1 cport=$2 iport=${3:-} text
  if ((is_node)); then
    text=$(<"$KAFKA_INFRA_DIR/server-cluster.properties")
    text=${text//@NODE_ID@/"$node_id"}
    text=${text//@VOTERS@/"$node_voters"}
  else
    text=$(<"$KAFKA_INFRA_DIR/server.properties")
  fi
  if [[ $security == sasl_ssl ]]; then
    # The plain listener lines give way to those of server-security.properties.
    text=$(grep -Ev '^(listeners|advertised\.listeners|inter\.broker\.listener\.name|listener\.security\.protocol\.map)=' <<<"$text")
    text+=$'\n'$(<"$KAFKA_INFRA_DIR/server-security.properties")
  fi
  text=${text//@PORT@/"$port"}
  text=${text//@CONTROLLER_PORT@/"$cport"}
  text=${text//@INTERNAL_PORT@/"$iport"}
  text=${text//@TLS_DIR@/"$tls_dir"}
  text=${text//@DATA_DIR@/"$dir/data"}
  # DRIFTLINE_BROKER_PROPERTIES: extra key=value settings, whitespace-separated; they
  # come last, so they win over the template's (e.g. broker.session.timeout.ms=4500)
  local extra props
  read -r -a props <<<"${DRIFTLINE_BROKER_PROPERTIES:-}"
  for extra in "${props[@]}"; do
    [[ $extra == ?*=* ]] || die "DRIFTLINE_BROKER_PROPERTIES: not key=value: $extra"
    text+=$'\n'$extra
  done
  printf '%s\n' "$text" >"$config"
}

format_storage() {
  local libs=$1 cid main u args=()
  [[ -f $dir/data/meta.properties ]] && return 0
  cid=$(read_file "$dir/cluster.id") || {
    cid=$("${probe[@]}" cluster-id)
    printf '%s\n' "$cid" >"$dir/cluster.id"
  }
  main=$(kafka_main_class kafka.tools.StorageTool org.apache.kafka.tools.StorageTool) ||
    die "no StorageTool in $libs"
  if [[ $security == sasl_ssl ]]; then
    # The SCRAM users go into the metadata at format time (KIP-900). Their
    # passwords reach the tool through an @file (one argument per line, 0600),
    # never through its command line.
    (
      umask 077
      for u in $scram_users; do
        printf -- '--add-scram\nSCRAM-SHA-512=[name=%s,password=%s]\n' "$u" "$(<"$secrets_dir/$u.password")"
      done >"$secrets_dir/format.args"
    )
    args=("@$secrets_dir/format.args")
  fi
  log "formatting $dir/data (cluster id $cid${args[*]:+, SCRAM-SHA-512 users: $scram_users})"
  # shellcheck disable=SC2046  # one option per line
  java -Xmx256m $(kafka_log_opts tools-) -cp "$libs/*" "$main" \
    format --ignore-formatted -t "$cid" -c "$config" "${args[@]}" >&2 || {
    rm -f "$secrets_dir/format.args"
    die "formatting the storage failed"
  }
  rm -f "$secrets_dir/format.args"
}

launch() {
  local libs=$1 heap jit default_heap="-Xmx1g -Xms256m"
  # three nodes share the machine: a smaller heap each (docs/broker.md)
  if ((is_node)); then default_heap="-Xmx512m -Xms128m"; fi
  read -r -a heap <<<"${DRIFTLINE_BROKER_HEAP:-$default_heap}"
  read -r -a jit <<<"${DRIFTLINE_BROKER_JIT--XX:TieredStopAtLevel=1}"
  rm -f "$pid_file"
  printf '\n===== %s: starting Kafka %s =====\n' "$(date '+%F %T')" "$KAFKA_VERSION" >>"$log_file"
  # setsid: the broker gets its own session, so the caller's Ctrl-C or process
  # group kill does not reach it; the child writes its own pid, then execs java.
  # shellcheck disable=SC2016,SC2046
  setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$pid_file" \
    java "${heap[@]}" "${jit[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true "-Dkafka.logs.dir=$dir" $(kafka_log_opts "") \
    -cp "$libs/*" kafka.Kafka "$config" \
    </dev/null >>"$log_file" 2>&1 8>&- &
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -s $pid_file ]] && return 0
    sleep 0.05
  done
  die "the broker process did not start"
}

fail_start() {
  local pid=$1
  log "$2; last 50 lines of $log_file:"
  tail -n 50 "$log_file" >&2 || true
  if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$pid_file"
  exit 1
}

cmd_up() {
  local libs pid port cport iport='' rc attempt start mark
  libs=$("$KAFKA_INFRA_DIR/fetch.sh")
  mkdir -p "$dir"
  touch "$marker"
  lock_dir "$dir" $((timeout + stop_timeout + 30))
  resolve_security

  if pid=$(running_pid); then
    port=$(read_file "$port_file") || die "$dir has no port file"
    if ! kprobe_ready probe "$port"; then
      log "broker pid $pid in $dir is not answering yet; waiting up to ${timeout}s"
      kprobe_ready wait "$port" "$pid" "$timeout" || die "broker pid $pid on port $port does not answer"
    fi
    log "already running (pid $pid, Kafka $(read_file "$dir/version" || echo '?'))"
    printf '127.0.0.1:%s\n' "$port"
    return 0
  fi

  for attempt in 1 2 3; do
    port=$(choose_port)
    cport=$(choose_controller_port "$port")
    if [[ $security == sasl_ssl ]]; then
      iport=$(choose_internal_port "$port" "$cport")
      printf '%s\n' "$iport" >"$iport_file"
      prepare_security
    fi
    write_config "$port" "$cport" "$iport"
    printf '%s\n' "$port" >"$port_file"
    printf '%s\n' "$cport" >"$cport_file"
    printf '%s\n' "$KAFKA_VERSION" >"$dir/version"
    format_storage "$libs"

    mark=$(($(wc -l 2>/dev/null <"$log_file" || echo 0) + 1))
    start=${EPOCHREALTIME/./}
    if ((is_node)); then
      log "starting Kafka $KAFKA_VERSION node $node_id on 127.0.0.1:$port (controller $cport), dir $dir"
    elif [[ $security == sasl_ssl ]]; then
      log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$port (SASL_SSL, SCRAM-SHA-512; internal $iport, controller $cport), dir $dir"
    else
      log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$port (controller $cport), dir $dir"
    fi
    launch "$libs"
    pid=$(<"$pid_file")
    if ((no_wait)); then
      log "started (pid $pid); not waiting for it"
      printf '127.0.0.1:%s\n' "$port"
      return 0
    fi
    rc=0
    kprobe_ready wait "$port" "$pid" "$timeout" || rc=$?
    if ((rc == 0)); then
      log "ready in $(elapsed "$start") s (pid $pid)"
      printf '127.0.0.1:%s\n' "$port"
      return 0
    fi
    # A port picked as free can be taken by someone else before Kafka binds it.
    if ((rc == 2 && attempt < 3)) && [[ -z $opt_port || $opt_port == auto || $opt_port == 0 ]] &&
      tail -n +"$mark" "$log_file" | grep -q 'Address already in use'; then
      log "port $port or $cport was taken meanwhile; retrying with other ports"
      rm -f "$port_file" "$cport_file" "$iport_file" "$pid_file"
      opt_port=auto
      continue
    fi
    if ((rc == 2)); then fail_start "$pid" "the broker exited during start-up"; fi
    fail_start "$pid" "the broker did not answer within ${timeout}s"
  done
}

cmd_down() {
  local pid i
  if [[ ! -f $marker ]]; then
    log "no broker directory at $dir"
    return 0
  fi
  lock_dir "$dir" $((timeout + stop_timeout + 30))
  if pid=$(running_pid); then
    log "stopping broker pid $pid (SIGTERM, up to ${stop_timeout}s)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < stop_timeout * 10; i++)); do
      pid_alive "$pid" || break
      sleep 0.1
    done
    if pid_alive "$pid"; then
      log "still running after ${stop_timeout}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while pid_alive "$pid"; do sleep 0.1; done
    else
      log "stopped in $((i / 10)).$((i % 10)) s"
    fi
  else
    log "not running"
  fi
  rm -f "$pid_file"
  if ((purge)); then
    purge_dir
  fi
}

# Delete DIR, but only if it holds nothing that broker.sh did not put there.
purge_dir() {
  local e name ours=" .driftline-broker .lock broker.pid broker.port controller.port cluster.id version server.properties broker.log data security internal.port tls secrets node.conf "
  for e in "$dir"/* "$dir"/.[!.]*; do
    [[ -e $e ]] || continue
    name=${e##*/}
    [[ $ours == *" $name "* ]] || die "not deleting $dir: it holds $name, which broker.sh did not create"
  done
  rm -rf "$dir"
  log "deleted $dir"
}

cmd_status() {
  local pid port state=stopped rc=3
  port=$(read_file "$port_file") || port=
  security=$(read_file "$security_file") || security=plaintext
  if pid=$(running_pid); then
    if [[ -n $port ]] && kprobe_ready probe "$port"; then
      state=running
      rc=0
    else
      state="not answering"
    fi
  else
    pid=
  fi
  printf 'state: %s\npid: %s\nbootstrap: %s\nversion: %s\ndir: %s\n' \
    "$state" "${pid:--}" "${port:+127.0.0.1:$port}" "$(read_file "$dir/version" || true)" "$dir"
  if [[ $security == sasl_ssl ]]; then
    printf 'security: SASL_SSL (SCRAM-SHA-512), CA %s, secrets %s\n' "$tls_dir/ca.pem" "$secrets_dir"
  fi
  return "$rc"
}

cmd_logs() {
  [[ -f $log_file ]] || die "no log at $log_file"
  if ((follow)); then
    exec tail -n "$lines" -F "$log_file"
  fi
  tail -n "$lines" "$log_file"
}

"cmd_$cmd"

#!/usr/bin/env bash
# Fetches the Kafka broker and tool jars from Maven Central into the cache
# (once per version) and prints the libs directory on stdout.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<EOF
usage: infra/kafka/fetch.sh [--force] [--help]

Copies org.apache.kafka:kafka_2.13 and kafka-tools (version \$DRIFTLINE_KAFKA_VERSION,
default 3.9.1) and their runtime dependencies into
  \${DRIFTLINE_KAFKA_CACHE:-<repo>/.cache/kafka}/<version>/libs
with Maven (infra/kafka/pom.xml), after infra/bootstrap.sh. Skipped when the stamp
file <version>/.complete matches the version and pom.xml; --force fetches again.
Prints the libs directory as the only line on stdout; progress goes to stderr.
Maven settings pass through MAVEN_OPTS (e.g. -Dmaven.repo.local=DIR).
EOF
}

force=0
for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    --force) force=1 ;;
    *) usage >&2; exit 2 ;;
  esac
done

log() { printf 'fetch: %s\n' "$*" >&2; }

"$REPO_ROOT/infra/bootstrap.sh" --quiet

vdir=$KAFKA_CACHE/$KAFKA_VERSION
libs=$(kafka_libs)
stamp=$vdir/.complete
pom=$KAFKA_INFRA_DIR/pom.xml
want="version=$KAFKA_VERSION pom=$(sha256sum "$pom" | cut -c1-16)"

complete() { [[ -d $libs && -f $stamp && "$(cat "$stamp")" == "$want" ]]; }

if ((!force)) && complete; then
  printf '%s\n' "$libs"
  exit 0
fi

mkdir -p "$vdir"
# One fetch per version at a time (tests may start several brokers at once).
exec 9>"$vdir/.lock"
flock 9
if ((!force)) && complete; then
  printf '%s\n' "$libs"
  exit 0
fi

mvn_args=(-q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime
  "-Dkafka.version=$KAFKA_VERSION")
if (($(kafka_major) >= 4)); then
  mvn_args+=(-Dkafka.logging=log4j2)
fi

tmp=$vdir/libs.tmp
rm -rf "$tmp"
log "fetching Kafka $KAFKA_VERSION jars with Maven into $libs"
start=$SECONDS
# (Maven 3.8 prints colour codes even with -q -B; strip them.)
if ! mvn "${mvn_args[@]}" "-DoutputDirectory=$tmp" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2; then
  log "mvn failed (is Kafka $KAFKA_VERSION on Maven Central? try: mvn dependency:get -Dartifact=org.apache.kafka:kafka_2.13:$KAFKA_VERSION)"
  rm -rf "$tmp"
  exit 1
fi

# An index of the classes in Kafka's own jars, so kafka-tool.sh can find which
# main class a tool has in this version without starting a JVM.
python3 - "$tmp" >"$tmp/classes.txt" <<'PY'
import pathlib, sys, zipfile
for jar in sorted(pathlib.Path(sys.argv[1]).glob("kafka*.jar")):
    for name in zipfile.ZipFile(jar).namelist():
        if name.endswith(".class") and "$" not in name:
            print(name[: -len(".class")].replace("/", "."))
PY

rm -rf "$libs"
mv "$tmp" "$libs"
printf '%s\n' "$want" >"$stamp"
log "done in $((SECONDS - start)) s: $(find "$libs" -name '*.jar' | wc -l) jars, $(du -sh "$libs" | cut -f1)"
printf '%s\n' "$libs"

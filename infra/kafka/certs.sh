#!/usr/bin/env bash
# TLS material for the local secured broker (broker.sh up --security), made with
# openssl: a private CA and one broker certificate for 127.0.0.1 / localhost.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: infra/kafka/certs.sh DIR

Creates in DIR (idempotent: existing files that are still valid are kept):
  ca.pem            CA certificate (PEM): the trust anchor for clients
                    (librdkafka ssl.ca.location, Python ssl cafile, Java PEM truststore)
  ca.key            CA private key (0600)
  broker.pem        broker certificate, CN=driftline-broker, SAN DNS:localhost and
                    IP:127.0.0.1, for server and client use (the broker presents it
                    on its TLS listeners and to its own controller)
  broker.key        broker private key, unencrypted PKCS#8 (0600)
  broker-keystore.pem
                    broker.key + broker.pem + ca.pem in one file: the broker's
                    ssl.keystore.type=PEM keystore (0600)
The CA is valid 10 years, the broker certificate 2 years; a broker certificate
that expires within 30 days, does not match ca.pem, or is missing is reissued.
Only what it creates is reported, on stderr; stdout stays empty.
EOF
}

case "${1:-}" in
  "") usage >&2; exit 2 ;;
  -h | --help) usage; exit 0 ;;
esac
(($# == 1)) || { usage >&2; exit 2; }

log() { printf 'certs: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

command -v openssl >/dev/null 2>&1 || die "openssl is missing (infra/bootstrap.sh installs it)"

dir=$1
mkdir -p -- "$dir"
dir=$(cd -- "$dir" && pwd)
umask 077

subject_cn=driftline-broker
ca_days=3650
broker_days=730
renew_before=$((30 * 24 * 3600))

new_key() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null ||
    die "openssl could not generate a key"
  chmod 600 "$1"
}

ca_ok() {
  [[ -s $dir/ca.pem && -s $dir/ca.key ]] &&
    openssl x509 -in "$dir/ca.pem" -noout -checkend "$renew_before" >/dev/null 2>&1
}

broker_ok() {
  [[ -s $dir/broker.pem && -s $dir/broker.key && -s $dir/broker-keystore.pem ]] &&
    openssl x509 -in "$dir/broker.pem" -noout -checkend "$renew_before" >/dev/null 2>&1 &&
    openssl verify -CAfile "$dir/ca.pem" "$dir/broker.pem" >/dev/null 2>&1 &&
    [[ $(openssl pkey -in "$dir/broker.key" -pubout 2>/dev/null) == \
      "$(openssl x509 -in "$dir/broker.pem" -noout -pubkey 2>/dev/null)" ]]
}

tmp=$(mktemp -d "$dir/.certs.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT

if ! ca_ok; then
  new_key "$tmp/ca.key"
  openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days "$ca_days" \
    -subj "/CN=Driftline local CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$tmp/ca.pem" 2>/dev/null || die "openssl could not create the CA"
  chmod 644 "$tmp/ca.pem"
  mv -f "$tmp/ca.key" "$dir/ca.key"
  mv -f "$tmp/ca.pem" "$dir/ca.pem"
  rm -f "$dir/broker.pem" # signed by the old CA, if any
  log "created a CA in $dir/ca.pem"
fi

if ! broker_ok; then
  new_key "$tmp/broker.key"
  cat >"$tmp/ext.cnf" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
EOF
  openssl req -new -key "$tmp/broker.key" -subj "/CN=$subject_cn" -out "$tmp/broker.csr" 2>/dev/null ||
    die "openssl could not create the broker's request"
  openssl x509 -req -in "$tmp/broker.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -CAserial "$tmp/ca.srl" -sha256 -days "$broker_days" \
    -extfile "$tmp/ext.cnf" -out "$tmp/broker.pem" 2>/dev/null ||
    die "openssl could not sign the broker certificate"
  chmod 644 "$tmp/broker.pem"
  cat "$tmp/broker.key" "$tmp/broker.pem" "$dir/ca.pem" >"$tmp/broker-keystore.pem"
  chmod 600 "$tmp/broker-keystore.pem"
  mv -f "$tmp/broker.key" "$dir/broker.key"
  mv -f "$tmp/broker.pem" "$dir/broker.pem"
  mv -f "$tmp/broker-keystore.pem" "$dir/broker-keystore.pem"
  log "issued $dir/broker.pem (CN=$subject_cn, DNS:localhost, IP:127.0.0.1)"
fi

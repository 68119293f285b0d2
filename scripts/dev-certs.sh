#!/usr/bin/env bash
# Development certificates: a local CA and a `localhost` server certificate it signs.
#
#   scripts/dev-certs.sh <dir> [SAN ...]
#
# Writes into <dir> (created if missing):
#   ca.crt, ca.key          the CA (10 years); trust ca.crt in clients, keep ca.key private
#   server.key, server.crt  ECDSA P-256 key and certificate (397 days) for DNS:localhost,
#                           IP:127.0.0.1, IP:::1 and any extra SANs given, e.g. DNS:haproxy
#   server-chain.crt        server.crt then ca.crt (TLS_CERT_FILE for a full chain)
#   server.pem              server-chain.crt then server.key (HAProxy's `crt` wants one file)
#
# Idempotent: an existing CA is kept, and so is an existing server certificate (extra SANs
# apply only when it is made). Delete server.crt to issue a new key and certificate from the same
# CA; delete ca.crt to start over. Prints the paths it wrote; needs only openssl.
set -euo pipefail

dir=${1:?usage: scripts/dev-certs.sh <dir> [SAN ...]}
shift
sans="DNS:localhost,IP:127.0.0.1,IP:::1"
for san in "$@"; do sans="$sans,$san"; done

mkdir -p "$dir"
cd "$dir"
umask 077 # keys are readable by their owner only

new_ca=0
if [ ! -s ca.crt ] || [ ! -s ca.key ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 3650 \
    -subj "/CN=fastify-realtime development CA" \
    -addext "basicConstraints=critical,CA:true,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout ca.key -out ca.crt 2>/dev/null
  new_ca=1
fi

if [ "$new_ca" = 1 ] || [ ! -s server.crt ] || [ ! -s server.key ]; then
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
    -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
  # A random serial: two certificates from one CA never share one.
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -days 397 -sha256 \
    -set_serial "0x$(openssl rand -hex 16)" -out server.crt -extfile <(printf '%s\n' \
      "subjectAltName=$sans" \
      "basicConstraints=critical,CA:false" \
      "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=serverAuth") 2>/dev/null
  rm -f server.csr
fi

cat server.crt ca.crt > server-chain.crt
cat server-chain.crt server.key > server.pem
chmod 644 ca.crt server.crt server-chain.crt
echo "$PWD/ca.crt $PWD/server.crt $PWD/server.key $PWD/server-chain.crt $PWD/server.pem"

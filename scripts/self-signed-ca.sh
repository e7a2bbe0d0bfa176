#!/usr/bin/env bash
# Writes a throwaway private CA and a server certificate it signed into DIR, for the TLS tests
# (the control plane serving https:// on loopback to the CLI, the worker and every client):
#   DIR/ca.pem           the CA certificate, what clients are told to trust (--ca-cert)
#   DIR/server.pem       the server certificate (127.0.0.1, ::1, localhost), signed by the CA
#   DIR/server-key.pem   its private key
# Needs only the openssl command. The keys are EC P-256 and live one day.
set -euo pipefail
dir=${1:?usage: scripts/self-signed-ca.sh DIR}
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=Backflow test CA" -keyout ca-key.pem -out ca.pem \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=localhost" -keyout server-key.pem -out server.csr 2>/dev/null
cat > server.ext <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
EXT
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 \
  -extfile server.ext -out server.pem 2>/dev/null
rm -f server.csr server.ext ca.srl

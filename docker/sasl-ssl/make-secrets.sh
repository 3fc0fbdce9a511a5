#!/usr/bin/env bash
# docker-compose.sasl-ssl.yml, step 1 (a one-shot container of the apache/kafka image,
# which has bash and the JDK's keytool): a private CA, the broker's PKCS12 keystore
# and truststore, the CA certificate for clients (ca.pem), and a random password for
# every SCRAM user, in $SECRETS (the kafka-secrets volume). Nothing is made twice.
#
# The CA's private key is deleted once the broker certificate is signed: nothing else
# can be issued for this broker, and losing the volume loses nothing worth keeping.
# Files are readable by the other containers that mount the volume (the broker runs
# as the image's appuser, the services as their own user); keep the volume to them.
set -euo pipefail

SECRETS="${SECRETS:-/secrets}"
USERS=(broker admin engine retrainer)
cd "$SECRETS"
if [[ -f ca.pem ]]; then
    echo "secrets already in $SECRETS"
    exit 0
fi
umask 022

new_password() { head -c 32 /dev/urandom | base64 | tr -d '/+=\n'; }
for user in "${USERS[@]}"; do new_password >"$user.password"; done
new_password >store.password
store="$(cat store.password)"

# The CA, in a keystore that is deleted at the end.
keytool -genkeypair -alias ca -keyalg EC -groupname secp256r1 -validity 3650 \
    -dname "CN=stream-mlops compose CA" -ext bc:c=ca:true,pathlen:0 -ext ku:c=keyCertSign,cRLSign \
    -storetype PKCS12 -keystore ca.p12 -storepass "$store"
keytool -exportcert -rfc -alias ca -keystore ca.p12 -storepass "$store" -file ca.pem.partial

# The broker's key and a certificate for the names clients use: kafka (containers)
# and localhost / 127.0.0.1 (the host). CN=broker maps to the principal User:broker
# on the mutual-TLS controller listener.
keytool -genkeypair -alias broker -keyalg EC -groupname secp256r1 -validity 3650 \
    -dname "CN=broker" -storetype PKCS12 -keystore broker.p12 -storepass "$store"
keytool -certreq -alias broker -keystore broker.p12 -storepass "$store" -file broker.csr
keytool -gencert -alias ca -keystore ca.p12 -storepass "$store" -validity 3650 -rfc \
    -ext san=dns:kafka,dns:localhost,ip:127.0.0.1 -ext eku=serverAuth,clientAuth \
    -infile broker.csr -outfile broker.crt
keytool -importcert -noprompt -alias ca -file ca.pem.partial -keystore broker.p12 -storepass "$store"
keytool -importcert -alias broker -file broker.crt -keystore broker.p12 -storepass "$store"
keytool -importcert -noprompt -alias ca -file ca.pem.partial \
    -storetype PKCS12 -keystore truststore.p12 -storepass "$store"
rm -f ca.p12 broker.csr broker.crt

# The Java tools (kafka-acls.sh in the acls service) as admin.
cat >admin.properties <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat admin.password)";
ssl.truststore.type=PEM
ssl.truststore.location=$SECRETS/ca.pem
PROPERTIES
# Written last: its presence means the rest is complete.
mv ca.pem.partial ca.pem
echo "secrets written to $SECRETS"

#!/usr/bin/env bash
# docker-compose.sasl-ssl.yml, step 2: the broker. Replaces the image's entrypoint,
# because SCRAM users must exist before the first start and only the storage format
# can add them (kafka-storage.sh format --add-scram); then runs Kafka on
# server.properties (mounted next to this script) plus the secrets of the volume.
set -euo pipefail

SECRETS="${SECRETS:-/secrets}"
USERS=(broker admin engine retrainer)
store="$(cat "$SECRETS/store.password")"
properties=/tmp/server.properties
jaas_module=org.apache.kafka.common.security.scram.ScramLoginModule

cp /etc/stream-mlops/server.properties "$properties"
chmod 600 "$properties"
cat >>"$properties" <<PROPERTIES
ssl.keystore.location=$SECRETS/broker.p12
ssl.keystore.password=$store
ssl.key.password=$store
ssl.truststore.location=$SECRETS/truststore.p12
ssl.truststore.password=$store
listener.name.internal.scram-sha-512.sasl.jaas.config=$jaas_module required username="broker" password="$(cat "$SECRETS/broker.password")";
listener.name.external.scram-sha-512.sasl.jaas.config=$jaas_module required;
PROPERTIES

scram=()
for user in "${USERS[@]}"; do
    scram+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$(cat "$SECRETS/$user.password")]")
done
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted \
    --cluster-id "$CLUSTER_ID" --config "$properties" "${scram[@]}"
exec /opt/kafka/bin/kafka-server-start.sh "$properties"

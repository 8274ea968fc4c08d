#!/usr/bin/env bash
# One-shot setup of the Elasticsearch container of docker/compose.yml:
#   - sets the kibana_system password (Kibana logs in with it),
#   - creates the role `eshybrid_app` and the user `eshybrid` the services log in with.
# Every password comes from docker/.env; nothing here has a default.
set -euo pipefail

es_url="${ES_URL:-http://elasticsearch:9200}"
: "${ELASTIC_PASSWORD:?}" "${KIBANA_PASSWORD:?}" "${ESHYBRID_PASSWORD:?}"

json_string() {
  # Quote a value for JSON (backslash and double quote; passwords hold no control characters).
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

es() {
  local method=$1 path=$2 body=${3:-}
  curl -fsS -u "elastic:${ELASTIC_PASSWORD}" -X "$method" "${es_url}${path}" \
    -H 'content-type: application/json' ${body:+-d "$body"}
}

for _ in $(seq 1 60); do
  if es GET '/_cluster/health?wait_for_status=yellow&timeout=5s' >/dev/null 2>&1; then break; fi
  sleep 2
done

es POST /_security/user/kibana_system/_password "{\"password\":$(json_string "$KIBANA_PASSWORD")}" >/dev/null
es PUT /_security/role/eshybrid_app '{
  "cluster": ["monitor"],
  "indices": [{"names": ["*"],
               "privileges": ["read", "write", "create_index", "manage", "view_index_metadata"]}]
}' >/dev/null
es PUT /_security/user/eshybrid "{\"password\":$(json_string "$ESHYBRID_PASSWORD"),\"roles\":[\"eshybrid_app\"],\"full_name\":\"eshybrid services\"}" >/dev/null
echo "es-setup: kibana_system password set, user eshybrid ready"

#!/usr/bin/env bash
# One-shot setup of the OpenSearch container of docker/compose.opensearch.yml:
#   - removes the demo users the security plugin's demo configuration adds (they have
#     published passwords); `admin` (OPENSEARCH_INITIAL_ADMIN_PASSWORD) stays, and the
#     reserved `kibanaserver` user is left for docs/docker.md to explain,
#   - creates the role `eshybrid_app` and the user `eshybrid` the services log in with.
set -euo pipefail

os_url="${OS_URL:-http://opensearch:9200}"
: "${OPENSEARCH_INITIAL_ADMIN_PASSWORD:?}" "${ESHYBRID_PASSWORD:?}"

json_string() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

os() {
  local method=$1 path=$2 body=${3:-}
  curl -fsS -u "admin:${OPENSEARCH_INITIAL_ADMIN_PASSWORD}" -X "$method" "${os_url}${path}" \
    -H 'content-type: application/json' ${body:+-d "$body"}
}

for _ in $(seq 1 60); do
  if os GET '/_cluster/health?wait_for_status=yellow&timeout=5s' >/dev/null 2>&1; then break; fi
  sleep 2
done

for demo_user in kibanaro logstash readall snapshotrestore; do
  curl -sS -o /dev/null -u "admin:${OPENSEARCH_INITIAL_ADMIN_PASSWORD}" -X DELETE \
    "${os_url}/_plugins/_security/api/internalusers/${demo_user}" || true
done

os PUT /_plugins/_security/api/roles/eshybrid_app '{
  "cluster_permissions": ["cluster_monitor", "cluster_composite_ops", "cluster:admin/search/pipeline/*"],
  "index_permissions": [{"index_patterns": ["*"], "allowed_actions": ["indices_all"]}]
}' >/dev/null
os PUT /_plugins/_security/api/internalusers/eshybrid "{\"password\":$(json_string "$ESHYBRID_PASSWORD")}" >/dev/null
os PUT /_plugins/_security/api/rolesmapping/eshybrid_app '{"users": ["eshybrid"]}' >/dev/null
echo "opensearch-setup: demo users removed, user eshybrid ready"

#!/usr/bin/env bash
# One-shot: import every /saved-objects/*.ndjson into Kibana or OpenSearch Dashboards
# with the Saved Objects import API (overwrite=true, so re-running is safe).
#   import-saved-objects.sh BASE_URL XSRF_HEADER USER     (password in $IMPORT_PASSWORD)
set -euo pipefail

base_url=$1 xsrf_header=$2 user=$3
: "${IMPORT_PASSWORD:?}"

for _ in $(seq 1 90); do
  if curl -fsS -u "${user}:${IMPORT_PASSWORD}" "${base_url}/api/status" >/dev/null 2>&1; then break; fi
  sleep 2
done

shopt -s nullglob
for file in /saved-objects/*.ndjson; do
  answer=$(curl -fsS -u "${user}:${IMPORT_PASSWORD}" -X POST \
    "${base_url}/api/saved_objects/_import?overwrite=true" \
    -H "${xsrf_header}: true" --form "file=@${file}")
  case "$answer" in
    *'"success":true'*) echo "imported ${file}" ;;
    *) echo "import of ${file} failed: ${answer}" >&2; exit 1 ;;
  esac
done

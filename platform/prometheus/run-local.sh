#!/usr/bin/env bash
# Start Debian's Prometheus in the foreground on 127.0.0.1 with this directory's config (scrapes
# the duet-sim exporter at 127.0.0.1:9108, records the dashboards' rules). No systemd needed.
#
#   platform/prometheus/run-local.sh                      # http://127.0.0.1:9090, data in a tmp dir
#   platform/prometheus/run-local.sh --port 9091 --data runs/prom --config my.yml
#   platform/prometheus/run-local.sh --install            # only make sure the binary is there
#
# Installs the `prometheus` package with apt-get when the binary is missing (needs root).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
port=9090
config="$here/prometheus.yml"
data=""
install_only=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --config) config="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --install) install_only=1; shift ;;
    *) echo "run-local.sh: unknown argument '$1' (accepted: --port N --config FILE --data DIR --install)" >&2; exit 2 ;;
  esac
done

# Debian installs the server as /usr/bin/prometheus; apt lists may be missing on a fresh machine
if ! command -v prometheus >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "run-local.sh: prometheus not found; as root: apt-get install -y prometheus" >&2
    exit 1
  fi
  echo "run-local.sh: installing Debian's prometheus package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q prometheus >&2 || { apt-get update -q >&2 && apt-get install -y -q prometheus >&2; }
fi
if [[ $install_only -eq 1 ]]; then
  command -v prometheus
  exit 0
fi

if [[ -z "$data" ]]; then
  data="$(mktemp -d -t duet-prometheus.XXXXXX)"
fi
echo "run-local.sh: http://127.0.0.1:$port  config $config  data $data" >&2
exec prometheus \
  --config.file="$config" \
  --storage.tsdb.path="$data" \
  --web.listen-address="127.0.0.1:$port" \
  --web.enable-lifecycle

#!/usr/bin/env bash
# Installs memllm serve as a systemd service: fills deploy/memllm-serve.service
# with this checkout's path, the user to run as and the serve options, and
# writes it to the unit directory.
#
#   deploy/install-service.sh [--unit-dir DIR] [--user USER] -- SERVE-OPTIONS...
#   deploy/install-service.sh -- --model /models/M.gguf --adapter mr=adapters/smollm2-135m-mr \
#       --memory /data/memory --host 0.0.0.0 --port 8000 --api-keys /etc/memllm/keys
#   systemctl daemon-reload && systemctl enable --now memllm-serve
#
# --unit-dir: where to write memllm-serve.service (default
# /etc/systemd/system); --user: the account it runs as (default: the one
# running this). The serve options go to `memllm serve` as they are; run
# deploy/build.sh first. MEMLLM_BIN: another binary (default
# build/coordinator/memllm of this checkout).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$(realpath "${MEMLLM_BIN:-$here/build/coordinator/memllm}")
unit_dir=/etc/systemd/system
user=$(id -un)
while [ $# -gt 0 ]; do
  case "$1" in
    --unit-dir) unit_dir=$2; shift 2 ;;
    --user) user=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "install-service.sh: unknown option '$1' (serve options go after --)" >&2; exit 2 ;;
  esac
done
if [ $# -eq 0 ]; then
  sed -n '5,9p' "$0" >&2
  exit 2
fi
# Every option as one systemd word: quoted, with its backslashes, quotes and
# specifiers (%) escaped, so paths with spaces survive.
args=""
drain=60
prev=""
for a in "$@"; do
  [ "$prev" = "--drain-seconds" ] && drain=$a
  prev=$a
  q=${a//\\/\\\\}
  q=${q//\"/\\\"}
  q=${q//%/%%}
  args+=" \"$q\""
done
case "$drain" in
  '' | *[!0-9]*) echo "install-service.sh: --drain-seconds '$drain' is not a number" >&2; exit 2 ;;
esac
mkdir -p "$unit_dir"
out=$unit_dir/memllm-serve.service
# '|' cannot appear in a path field of the unit; sed's replacement escapes & and \.
esc() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }
sed -e "s|@MEMLLM_HOME@|$(esc "$here")|g" -e "s|@MEMLLM_BIN@|$(esc "$bin")|g" -e "s|@USER@|$(esc "$user")|g" \
  -e "s|@STOP_SECONDS@|$((drain + 30))|g" -e "s|@ARGS@|$(esc "${args# }")|g" \
  "$here/deploy/memllm-serve.service" >"$out"
echo "install-service.sh: wrote $out (systemctl daemon-reload && systemctl enable --now memllm-serve)"

#!/usr/bin/env bash
# systemd-analyze verify on both units, with ExecStart pointing at the binaries
# of this build tree (the installed paths do not exist before `cmake --install`).
set -euo pipefail
src=$1 build=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
sed "s|@CMAKE_INSTALL_FULL_BINDIR@|$build/server|" "$src/systemd/paddock-server.service.in" >"$out/paddock-server.service"
sed "s|@CMAKE_INSTALL_FULL_BINDIR@|$build/agent|" "$src/systemd/paddock-agent.service.in" >"$out/paddock-agent.service"
# verify reports some fatal unit errors on stderr yet exits 0: any output fails.
report=$(systemd-analyze verify "$out/paddock-server.service" "$out/paddock-agent.service" 2>&1) || {
  echo "$report" >&2; exit 1; }
if [[ -n $report ]]; then echo "$report" >&2; exit 1; fi
# The hardening the units promise must stay in them.
for key in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes Restart=on-failure \
           StateDirectory= EnvironmentFile=; do
  grep -q "^$key" "$out/paddock-server.service" || { echo "paddock-server.service lacks $key" >&2; exit 1; }
  grep -q "^$key" "$out/paddock-agent.service" || { echo "paddock-agent.service lacks $key" >&2; exit 1; }
done
grep -q '^User=paddock' "$out/paddock-server.service" || { echo "paddock-server.service must run as its own user" >&2; exit 1; }
echo "both units verify"

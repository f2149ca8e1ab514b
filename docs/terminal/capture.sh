#!/bin/sh
# Regenerate the captures in this directory: each command runs in a real terminal (a tmux
# pane of the given size), and the pane's whole output is saved as text
# (tmux capture-pane -p -J: colours dropped, lines the terminal wrapped joined again).
# Run from the repository root after `make demo` (it needs .venv/bin/migcheck).
set -eu
ROOT=$(pwd)
OUT="$ROOT/docs/terminal"
BIN="$ROOT/.venv/bin"
H=fixtures/hosts
C=fixtures/cmdlines
# Inputs under build/ (git ignores it), named relative to the root: the captures show them.
FLEET=build/terminal/fleet
GATHER=build/terminal/gather
SESSION=migcheck-capture-$$
rm -rf build/terminal && mkdir -p "$FLEET" "$GATHER"
trap 'tmux kill-session -t "$SESSION" 2>/dev/null || true; rm -rf build/terminal' EXIT

# A small fleet from the bundled captures: QEMU 7.2 and 10.0 on kernel 6.18, QEMU 10.0
# with Debian 12's and Ubuntu 24.04's kernel strings (fixtures/hosts/uso), and a second
# hv-trixie so that one class holds two hosts.
cp "$H"/*.json "$H"/uso/*.json "$FLEET"/
cp -r "$H"/qemu-builds "$FLEET"/
"$BIN"/python - "$FLEET" <<'PY'
import json, pathlib, sys
d = pathlib.Path(sys.argv[1])
doc = json.loads((d / "debian13-qemu10.0-epyc-pvm.json").read_text())
doc["host"]["name"] = "hv-trixie2"
(d / "hv-trixie2.json").write_text(json.dumps(doc))
PY

# Saved facts under long host names, as `gather --out-dir` names them (gather re-reads a
# facts file as a HOST): the summary must keep the host column at 80 columns.
cp "$H"/debian12-qemu7.2-epyc-pvm.json "$GATHER"/hypervisor-rack12-bookworm.example.net.json
cp "$H"/debian13-qemu10.0-epyc-pvm.json "$GATHER"/hypervisor-rack12-trixie.example.net.json
cp -r "$H"/qemu-builds "$GATHER"/

capture() {  # NAME WIDTH HEIGHT COMMAND
    tmux kill-session -t "$SESSION" 2>/dev/null || true
    tmux new-session -d -s "$SESSION" -x "$2" -y "$3" -c "$ROOT" \
        "env -u COLUMNS -u LINES PATH=$BIN:\$PATH PS1='$ ' sh"
    tmux set-option -t "$SESSION" history-limit 5000 >/dev/null
    tmux send-keys -t "$SESSION" "$4; echo \"(exit \$?)\"" Enter
    for _ in $(seq 1 120); do
        sleep 0.5
        tmux capture-pane -p -J -S - -t "$SESSION" | grep -q '^(exit [0-9]*)$' && break
    done
    tmux capture-pane -p -J -S - -t "$SESSION" | sed -e 's/[[:space:]]*$//' \
        | awk 'NF {for (; blank > 0; blank--) print ""; print; next} {blank++}' \
        | sed -e '$ {/^\$$/d}' > "$OUT/$1"
}

UNSAFE="migcheck pair $H/debian13-qemu10.0-epyc-pvm.json $H/debian12-qemu7.2-epyc-pvm.json --cmdline $C/web01-q35.cmdline"
SAFE="migcheck pair $H/debian12-qemu7.2-epyc-pvm.json $H/debian13-qemu10.0-epyc-pvm.json --cmdline $C/web01-pinned.cmdline"
FLEETCMD="migcheck fleet $FLEET/*.json -c $C/web01-q35.cmdline -c $C/uso-guest.cmdline"

for size in 80x24 200x50; do
    w=${size%x*} h=${size#*x}
    capture "pair-unsafe-$w.txt" "$w" "$h" "$UNSAFE"
    capture "pair-safe-$w.txt" "$w" "$h" "$SAFE"
    capture "fleet-$w.txt" "$w" "$h" "$FLEETCMD"
done
# A command line that leaves almost everything to QEMU: what migcheck assumed is marked.
printf 'qemu-system-x86_64 -enable-kvm -drive file=disk.img\n' > "$FLEET/bare.cmdline"
capture pair-assumed-80.txt 80 24 "migcheck pair $H/debian13-qemu10.0-epyc-pvm.json $H/debian12-qemu7.2-epyc-pvm.json --cmdline $FLEET/bare.cmdline"
capture gather-80.txt 80 24 "migcheck gather $GATHER/*.json --out-dir $GATHER/out"

# Sourced by scripts/test and the AWS benchmarks: installs moto (the local AWS
# emulator) into .venv-moto when missing, starts it on a free loopback port, waits
# until it answers, and points the AWS SDK at it. The caller stops it: `stop_moto`.

start_moto() {
    local venv=.venv-moto
    if ! "$venv/bin/python" -c 'import moto.server' >/dev/null 2>&1; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==5.2.5"
    fi
    moto_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    moto_log="$(mktemp)"
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$moto_log" 2>&1 &
    moto_pid=$!
    python3 - "$moto_port" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/moto-api/"
for _ in range(150):
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit("moto did not start within 30 seconds")
PY
    export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
    export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-west-1
    export AWS_EC2_METADATA_DISABLED=true
}

stop_moto() {
    if [ -n "${moto_pid:-}" ]; then
        kill "$moto_pid" 2>/dev/null || true
        wait "$moto_pid" 2>/dev/null || true
    fi
    rm -f "${moto_log:-}"
}

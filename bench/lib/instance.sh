# instance.sh - a private MLConnector instance for one benchmark run: its
# own state dir and port, stopped and removed when the script exits.
# Source it, then call bench_instance_up; BASE_URL and MLC_VAR are set.

bench_instance_up() {
	local root=$1
	export MLC_VAR=$(mktemp -d /tmp/mlc-bench.XXXXXX)
	export MLC_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	chmod 755 "$MLC_VAR"
	BENCH_ROOT=$root
	trap '"$BENCH_ROOT/scripts/mlc" down >/dev/null 2>&1 || true; rm -rf "$MLC_VAR"' EXIT
	"$root/scripts/mlc" up >/dev/null
	export BASE_URL=http://127.0.0.1:$MLC_PORT
	export MLC_DB_SOCKET=$MLC_VAR/run/mysqld.sock MLC_DB_USER=${MLC_DB_USER:-mlc}
	export MLC_DB_PASSWORD=${MLC_DB_PASSWORD:-mlc} MLC_DB_NAME=${MLC_DB_NAME:-mlconnector}
}

# bench_predict_up ROOT: bench_instance_up, then the deployments that
# bench/lib/predict_setup.py makes (bench/predict.sh, bench/predict-cpu.sh);
# OUT is the directory of their files.
bench_predict_up() {
	bench_instance_up "$1"
	OUT=$MLC_VAR/bench-predict
	mkdir -p "$OUT"
	/usr/bin/python3 "$1/bench/lib/predict_setup.py" "$OUT"
}

# bench_predict_running ROOT: the instance already running at BASE_URL
# (MLC_VAR, as for bench/cpu.sh), with bench/lib/predict_setup.py's
# deployments made unless they are there; nothing is stopped at exit.
bench_predict_running() {
	. "$1/bench/lib/env.sh"
	bench_running_instance "$1"
	export BASE_URL MLC_DB_USER=${MLC_DB_USER:-mlc} MLC_DB_PASSWORD=${MLC_DB_PASSWORD:-mlc}
	export MLC_DB_NAME=${MLC_DB_NAME:-mlconnector}
	OUT=$MLC_VAR/bench-predict
	mkdir -p "$OUT"
	/usr/bin/python3 "$1/bench/lib/predict_setup.py" "$OUT"
}

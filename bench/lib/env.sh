# env.sh - sourced by the bench scripts: the instance's settings, read by
# scripts/mlc itself ("mlc config-dump": conf/mlconnector.conf, each key
# overridable by an environment variable of the same name).

bench_load_config() {
	local root=$1 __bench_line __bench_dump
	: "${MLC_CONF:=$root/conf/mlconnector.conf}"
	export MLC_CONF
	if [[ -r $MLC_CONF ]]; then
		__bench_dump=$("$root/scripts/mlc" config-dump) || exit 1
		while IFS= read -r __bench_line; do
			[[ -z $__bench_line ]] || export "${__bench_line%%=*}=${__bench_line#*=}"
		done <<<"$__bench_dump"
	fi
	: "${MLC_VAR:=var}"
	[[ $MLC_VAR == /* ]] || MLC_VAR=$root/$MLC_VAR
	export MLC_VAR
	if [[ -z ${MLC_DB_HOST:-} ]]; then
		export MLC_DB_SOCKET=${MLC_DB_SOCKET:-$MLC_VAR/run/mysqld.sock}
	fi
}

# bench_running_instance ROOT: the settings of an instance that is already
# running (bench/api.sh, bench/cpu.sh); BASE_URL defaults to port 8090.
bench_running_instance() {
	bench_load_config "$1"
	BASE_URL=${BASE_URL:-http://127.0.0.1:8090}
	BASE_URL=${BASE_URL%/}
}

# The instance's database through the mariadb client.
bench_sql() {
	if [[ -n ${MLC_DB_HOST:-} ]]; then
		mariadb --no-defaults -h "$MLC_DB_HOST" -P "${MLC_DB_PORT:-3306}" -u "$MLC_DB_USER" \
			-p"$MLC_DB_PASSWORD" "$MLC_DB_NAME" "$@"
	else
		mariadb --no-defaults --socket="$MLC_DB_SOCKET" -u "$MLC_DB_USER" \
			-p"$MLC_DB_PASSWORD" "$MLC_DB_NAME" "$@"
	fi
}

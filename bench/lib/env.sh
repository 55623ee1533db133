# env.sh - sourced by the bench scripts: the instance's settings, read like
# scripts/mlc reads them (conf/mlconnector.conf, each key overridable by an
# environment variable of the same name).

bench_load_config() {
	local root=$1 line key value
	: "${MLC_CONF:=$root/conf/mlconnector.conf}"
	if [[ -r $MLC_CONF ]]; then
		while IFS= read -r line || [[ -n $line ]]; do
			[[ $line =~ ^[[:space:]]*([A-Z_][A-Z0-9_]*)=(.*)$ ]] || continue
			key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
			value=${value%\"}; value=${value#\"}; value=${value%\'}; value=${value#\'}
			[[ -n ${!key:-} ]] || export "$key=$value"
		done <"$MLC_CONF"
	fi
	: "${MLC_VAR:=var}"
	[[ $MLC_VAR == /* ]] || MLC_VAR=$root/$MLC_VAR
	export MLC_VAR
	if [[ -z ${MLC_DB_HOST:-} ]]; then
		export MLC_DB_SOCKET=${MLC_DB_SOCKET:-$MLC_VAR/run/mysqld.sock}
	fi
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

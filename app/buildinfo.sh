#!/bin/sh
# buildinfo.sh VERSION SQLDIR: print app/buildinfo.h, the version and the
# list of schema migrations (SQLDIR/NNN-*.sql) mlc-api is built with.
# Fails when two migrations share a number.
set -eu
version=$1 sqldir=$2
last=0
entries=
for f in "$sqldir"/[0-9][0-9][0-9]-*.sql; do
	[ -f "$f" ] || continue
	name=${f##*/}
	n=$(expr "${name%%-*}" + 0)
	if [ "$n" -le "$last" ]; then
		echo "$sqldir: $name has the number of an earlier migration; give it the next free one" >&2
		exit 1
	fi
	last=$n
	entries="$entries	{ $n, \"$name\" }, \\
"
done
[ -n "$entries" ] || entries="	{ 0, \"\" }, \\
"
printf '/* Made by make (app/buildinfo.sh) from configure.ac and sql/: do not edit. */\n'
printf '#ifndef MLC_BUILDINFO_H\n#define MLC_BUILDINFO_H\n\n'
printf '#define MLC_VERSION "%s"\n' "$version"
printf '/* The newest migration: the schema_version this mlc-api needs. */\n'
printf '#define MLC_SCHEMA_VERSION %d\n' "$last"
printf '/* { version, file name } of every migration, oldest first. */\n'
printf '#define MLC_MIGRATIONS \\\n%s\n' "$entries"
printf '#endif\n'

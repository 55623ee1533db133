#!/bin/sh
# ui/install.sh DIR: put the browser pages (/docs, /redoc, /dashboard) and
# the files of the npm packages they use (ui/vendor.list, from
# ui/node_modules, which "npm ci" in ui/ installs) into DIR, the directory
# nginx serves as /ui/ (@VAR@/nginx/ui).  DIR is replaced as a whole, by a
# rename, so nginx never serves a half-copied set.  Fails, leaving DIR as
# it was, when a listed file is missing (npm ci has not run).
# Used by scripts/mlc ("mlc up") and by "make install-ui".
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:?usage: ui/install.sh DIR}
new=$dest.new.$$
trap 'rm -rf "$new"' EXIT
rm -rf "$new"
mkdir -p "$new/vendor"
for page in docs redoc dashboard; do
	mkdir -p "$new/$page"
	for f in "$here/$page"/*.html "$here/$page"/*.js "$here/$page"/*.css; do
		[ -f "$f" ] || continue
		cp "$f" "$new/$page/"
	done
done
grep -v -e '^#' -e '^[[:space:]]*$' "$here/vendor.list" | while read -r src target; do
	if [ ! -f "$here/node_modules/$src" ]; then
		echo "ui/install.sh: ui/node_modules/$src is missing (run npm ci in ui/)" >&2
		exit 1
	fi
	mkdir -p "$(dirname "$new/vendor/$target")"
	cp "$here/node_modules/$src" "$new/vendor/$target"
done
chmod -R a+rX,go-w "$new"
if [ -e "$dest" ]; then
	rm -rf "$dest.old.$$"
	mv "$dest" "$dest.old.$$"
	mv "$new" "$dest"
	rm -rf "$dest.old.$$"
else
	mkdir -p "$(dirname "$dest")"
	mv "$new" "$dest"
fi
trap - EXIT

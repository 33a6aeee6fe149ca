#!/bin/sh
# Build labgw's Debian packages (packaging/debian) from a copy of the working
# tree, then check them with lintian: no errors, no warnings.
#
#   tools/mkdeb.sh OUT [VERSION]
#
# OUT gets labgw-VERSION/ (the copy), the .debs, the .changes and lintian.txt.
# VERSION defaults to the VERSION file; another one (e.g. 0.1.0+1, for an
# upgrade test) gets its own changelog entry and is what labgwd reports.
set -eu
out=$1
repo=$(cd "$(dirname "$0")/.." && pwd)
base=$(cat "$repo/VERSION")
ver=${2:-$base}
top=$(sed -n '1s/^labgw (\([^)]*\)).*/\1/p' "$repo/packaging/debian/changelog")
if [ "$top" != "$base" ]; then
	echo "packaging/debian/changelog is at $top but VERSION says $base" >&2
	exit 1
fi
for t in dpkg-buildpackage dh lintian; do
	command -v $t >/dev/null || { echo "mkdeb: $t is missing (make deps)" >&2; exit 1; }
done

rm -rf "$out"
src="$out/labgw-$ver"
mkdir -p "$src"
# tracked and new files, not what .gitignore names (build trees, node_modules)
(cd "$repo" && git ls-files -co --exclude-standard | while read -r f; do
	[ -e "$f" ] && printf '%s\n' "$f"
done | tar -cf - -T -) | tar -xf - -C "$src"
rm -rf "$src/debian"
cp -R "$repo/packaging/debian" "$src/debian"
cp "$repo/systemd/labgw.sysusers" "$src/debian/labgw.sysusers"
if [ "$ver" != "$base" ]; then
	printf '%s\n' "$ver" >"$src/VERSION"
	{
		printf 'labgw (%s) unstable; urgency=medium\n\n' "$ver"
		printf '  * Build %s of the working tree.\n\n' "$ver"
		printf ' -- labgw developers <labgw@arena-park.example>  %s\n\n' "$(date -R)"
		cat "$repo/packaging/debian/changelog"
	} >"$src/debian/changelog"
fi
(cd "$src" && dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1 || {
	tail -n 60 "$out/build.log" >&2
	exit 1
}
changes=$(ls "$out"/labgw_*.changes)
lintian --fail-on error,warning --tag-display-limit 0 "$changes" >"$out/lintian.txt" 2>&1 || {
	cat "$out/lintian.txt" >&2
	echo "mkdeb: lintian found errors or warnings" >&2
	exit 1
}
cat "$out/lintian.txt"
ls "$out"/*.deb

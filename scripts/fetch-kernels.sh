#!/usr/bin/env bash
# Pre-fetches lab kernels into the kpbench lab cache, so `kpbench lab` and lab runs
# need no network later. Usage: scripts/fetch-kernels.sh [debian:6.1 [debian:6.12 ...]]
# (default: debian:6.1, the lab's default kernel).
#
# Cache: $KPBENCH_LAB_CACHE or /var/cache/kpbench/lab (never inside the git tree).
# Layout (the same as harness/src/lab/kernel.rs reads):
#   kernels/<package>/root/      the package extracted with dpkg-deb -x, depmod run on it
#   kernels/<package>/complete   the kernel release; written last
# Needs: apt-get, apt-cache, dpkg-deb, depmod (kmod), and root for the default cache.
set -euo pipefail

cache="${KPBENCH_LAB_CACHE:-/var/cache/kpbench/lab}"
specs=("$@")
[ ${#specs[@]} -gt 0 ] || specs=(debian:6.1)

die() { echo "fetch-kernels: $*" >&2; exit 69; }
for tool in apt-get apt-cache dpkg-deb depmod; do
	command -v "$tool" >/dev/null || die "$tool not found: install it (apt/dpkg/kmod) or fetch kernels by hand"
done

# The newest cloud-amd64 kernel of a series, as harness/src/lab/spec.rs picks it: the
# highest-numbered linux-image-<series>.<n>...-cloud-amd64 (not the metapackage).
# A series apt does not have is bad input (exit 2), naming the series it has.
resolve() {
	local series="$1" pkg have
	local all
	all=$(apt-cache search --names-only '^linux-image-[0-9].*-cloud-amd64$' 2>/dev/null | awk '{print $1}')
	pkg=$(grep -E "^linux-image-${series//./\\.}[.-][0-9][^ ]*-cloud-amd64\$" <<<"$all" | sort -V | tail -n1 || true)
	if [ -z "$pkg" ]; then
		have=$(sed -n 's/^linux-image-\([0-9]*\.[0-9]*\)[.-][0-9].*/debian:\1/p' <<<"$all" | sort -uV | tr '\n' ' ')
		[ -n "$have" ] || die "no linux-image-*-cloud-amd64 package in the apt sources (apt-get update? a Debian archive in sources.list?)"
		echo "fetch-kernels: debian:$series: no linux-image-${series}*-cloud-amd64 package in the configured apt sources; available: $have" >&2
		exit 2
	fi
	echo "$pkg"
}

fetch() {
	local pkg="$1" dir="$cache/kernels/$1" dl="$cache/downloads"
	if [ -f "$dir/complete" ]; then
		echo "fetch-kernels: $pkg already in $dir"
		return
	fi
	mkdir -p "$dl"
	chmod 0777 "$dl" # apt downloads as the _apt user
	echo "fetch-kernels: apt-get download $pkg"
	(cd "$dl" && apt-get download -q "$pkg") || die "apt-get download $pkg failed"
	local deb
	deb=$(ls "$dl/${pkg}"_*.deb | head -n1)
	rm -rf "$dir"
	mkdir -p "$dir/root"
	dpkg-deb -x "$deb" "$dir/root"
	local vmlinuz release
	vmlinuz=$(ls "$dir"/root/boot/vmlinuz-* 2>/dev/null | head -n1) || true
	[ -n "$vmlinuz" ] || die "$pkg has no boot/vmlinuz-*: not a kernel image package?"
	release="${vmlinuz##*/vmlinuz-}"
	if [ -d "$dir/root/lib/modules/$release" ] || [ -d "$dir/root/usr/lib/modules/$release" ]; then
		depmod -b "$dir/root" "$release"
	fi
	echo "$release" >"$dir/complete"
	rm -f "$deb"
	echo "fetch-kernels: $pkg ($release) ready in $dir"
}

for spec in "${specs[@]}"; do
	case "$spec" in
	debian:linux-image-*) fetch "${spec#debian:}" ;;
	debian:*)
		pkg=$(resolve "${spec#debian:}") || exit $?
		fetch "$pkg"
		;;
	*)
		echo "fetch-kernels: $spec: only debian:<version> or debian:<package> are fetched; local files need no fetching" >&2
		exit 2
		;;
	esac
done

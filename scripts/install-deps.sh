#!/usr/bin/env bash
# Installs what kpbench needs on a fresh Debian/Ubuntu machine with Rust, if missing:
# the kernel tools each mode runs, the load-test and lab tools, clang and libbpf-dev for
# the BPF programs, and the default lab kernel. Idempotent: installs nothing when
# everything is there. Needs root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: needs root: run it as root (or with sudo)" >&2
	exit 69
fi

# command -> Debian package
declare -A need=(
	[iptables-nft-restore]=iptables
	[iptables-legacy-restore]=iptables
	[nft]=nftables
	[ipset]=ipset
	[ipvsadm]=ipvsadm
	[ip]=iproute2
	[wrk]=wrk
	[qemu-system-x86_64]=qemu-system-x86
	[busybox]=busybox-static
	[cpio]=cpio
	[depmod]=kmod
	[gzip]=gzip
	[cc]=gcc
	[chromium]=chromium
	[clang]=clang
	[bpftool]=bpftool
)
missing=()
for cmd in "${!need[@]}"; do
	PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
# busybox must be the static build: the lab's initramfs runs it without libraries.
if command -v busybox >/dev/null 2>&1 && ! dpkg -s busybox-static >/dev/null 2>&1; then
	missing+=(busybox-static)
fi
# The BPF programs (the ebpf modes' load balancers, the transit probes) are built with
# clang against libbpf's headers; bpftool is the ebpf modes' inspect command.
if [ ! -f /usr/include/bpf/bpf_helpers.h ]; then
	missing+=(libbpf-dev)
fi
if [ ${#missing[@]} -gt 0 ]; then
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	echo "install-deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
	echo "install-deps: cargo not found: install Rust (rustup) first" >&2
	exit 69
fi
# The test command lints with rustfmt and clippy.
for component in rustfmt clippy; do
	if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
		if command -v rustup >/dev/null 2>&1; then
			echo "install-deps: adding the Rust component $component" >&2
			rustup component add "$component"
		else
			echo "install-deps: cargo $component not found: install it with your Rust toolchain" >&2
			exit 69
		fi
	fi
done
# The default lab kernel (Debian's 6.1 cloud kernel, with IPVS and dummy).
if [ -z "${KPBENCH_SKIP_KERNELS:-}" ]; then
	"$here/fetch-kernels.sh" debian:6.1
fi

// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only
/*
 * kpbench: Cilium's socket load balancer for a TCP ClusterIP, on Cilium's own map
 * layout (Cilium v1.17: bpf/lib/common.h for the structs, bpf/lib/lb.h for the maps,
 * bpf/bpf_sock.c for the programs). Loaded by dataplane/src/ebpf/datapath.rs.
 *
 *   kpb_sock4_connect      cgroup/connect4: cil_sock4_connect -> __sock4_xlate_fwd
 *   kpb_sock4_getpeername  cgroup/getpeername4: cil_sock4_getpeername -> __sock4_xlate_rev
 *
 * Both are attached to the client cgroup kpbench creates for the run and moves its
 * own process into (dataplane/src/ebpf/cgroup.rs). The load generator is threads of
 * that process, so the cgroup holds more than the client: each program first checks
 * that the socket belongs to the client's network namespace (its cookie is in
 * kpb_config) and leaves every other socket alone. That check is kpbench's; the rest is Cilium's path for a TCP ClusterIP with
 * no session affinity, no source ranges and random backend selection.
 *
 * The struct layouts must match dataplane/src/ebpf/layout.rs byte for byte.
 */
#include <bpf/bpf_endian.h>

#include "cilium_lb4.h"

#define SYS_PROCEED 1

struct ipv4_revnat_tuple {
	__u64 cookie;
	__be32 address;
	__be16 port;
	__u16 pad;
};

struct ipv4_revnat_entry {
	__be32 address;
	__be16 port;
	__u16 rev_nat_index;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ipv4_revnat_tuple);
	__type(value, struct ipv4_revnat_entry);
	__uint(max_entries, 262144);
} cilium_lb4_reverse_sk SEC(".maps");

/* kpbench's own: [0] = the client namespace's cookie (0: translate nothing). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} kpb_config SEC(".maps");

static __always_inline int in_client_netns(void *ctx)
{
	__u32 zero = 0;
	__u64 *cookie = bpf_map_lookup_elem(&kpb_config, &zero);

	return cookie && *cookie && *cookie == bpf_get_netns_cookie(ctx);
}

SEC("cgroup/connect4")
int kpb_sock4_connect(struct bpf_sock_addr *ctx)
{
	struct lb4_key key = {};
	struct lb4_service *svc, *slot;
	struct lb4_backend *backend;
	struct ipv4_revnat_tuple rkey = {};
	struct ipv4_revnat_entry rval = {};
	struct ipv4_revnat_entry *old;
	__u32 backend_id;

	if (ctx->protocol != IPPROTO_TCP || !in_client_netns(ctx))
		return SYS_PROCEED;

	key.address = ctx->user_ip4;
	key.dport = (__be16)ctx->user_port;
	key.proto = IPPROTO_TCP;
	svc = lookup_service(&key);
	if (!svc)
		return SYS_PROCEED;

	/* sock_select_slot(): random for TCP. */
	key.backend_slot = (bpf_get_prandom_u32() % svc->count) + 1;
	slot = bpf_map_lookup_elem(&cilium_lb4_services_v2, &key);
	if (!slot)
		return SYS_PROCEED;
	backend_id = slot->backend_id;
	backend = bpf_map_lookup_elem(&cilium_lb4_backends_v3, &backend_id);
	if (!backend)
		return SYS_PROCEED;

	/* sock4_update_revnat(): write only when the entry differs. */
	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.address = backend->address;
	rkey.port = backend->port;
	rval.address = key.address;
	rval.port = key.dport;
	rval.rev_nat_index = svc->rev_nat_index;
	old = bpf_map_lookup_elem(&cilium_lb4_reverse_sk, &rkey);
	if (!old || old->address != rval.address || old->port != rval.port ||
	    old->rev_nat_index != rval.rev_nat_index)
		bpf_map_update_elem(&cilium_lb4_reverse_sk, &rkey, &rval, BPF_ANY);

	ctx->user_ip4 = backend->address;
	ctx->user_port = backend->port;
	return SYS_PROCEED;
}

SEC("cgroup/getpeername4")
int kpb_sock4_getpeername(struct bpf_sock_addr *ctx)
{
	struct ipv4_revnat_tuple rkey = {};
	struct ipv4_revnat_entry *val;
	struct lb4_key key = {};

	if (!in_client_netns(ctx))
		return SYS_PROCEED;
	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.address = ctx->user_ip4;
	rkey.port = (__be16)ctx->user_port;
	val = bpf_map_lookup_elem(&cilium_lb4_reverse_sk, &rkey);
	if (!val)
		return SYS_PROCEED;
	/* The service must still exist, else the entry is stale. */
	key.address = val->address;
	key.dport = val->port;
	key.proto = IPPROTO_TCP;
	if (!lookup_service(&key)) {
		bpf_map_delete_elem(&cilium_lb4_reverse_sk, &rkey);
		return SYS_PROCEED;
	}
	ctx->user_ip4 = val->address;
	ctx->user_port = val->port;
	return SYS_PROCEED;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

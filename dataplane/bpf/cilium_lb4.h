/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/*
 * kpbench: Cilium's load-balancing structs and maps (Cilium v1.17: bpf/lib/common.h
 * for the structs, bpf/lib/lb.h for the maps), shared by the socket LB
 * (socklb.bpf.c) and the per-packet tc LB (tclb.bpf.c). The agent side programs them
 * through dataplane/src/ebpf/layout.rs, which must match these byte for byte.
 */
#ifndef KPB_CILIUM_LB4_H
#define KPB_CILIUM_LB4_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#define LB_LOOKUP_SCOPE_EXT 0

struct lb4_key {
	__be32 address;      /* service virtual IPv4 address */
	__be16 dport;        /* L4 port */
	__u16 backend_slot;  /* 0: the service's master entry; 1..count: slots */
	__u8 proto;          /* L4 protocol, or IPPROTO_ANY (0) */
	__u8 scope;          /* LB_LOOKUP_SCOPE_* */
	__u8 pad[2];
};

struct lb4_service {
	union {
		__u32 backend_id;        /* slots: backend ID in lb4_backends */
		__u32 affinity_timeout;  /* master: algorithm << 24 | timeout */
		__u32 l7_lb_proxy_port;
	};
	__u16 count;          /* master: number of slots */
	__u16 rev_nat_index;  /* reverse NAT ID (network order, as the agent writes it) */
	__u8 flags;
	__u8 flags2;
	__u16 qcount;         /* quarantined backends after the active ones */
};

struct lb4_backend {
	__be32 address;
	__be16 port;
	__u8 proto;
	__u8 flags;       /* BE_STATE_ACTIVE = 0 */
	__u16 cluster_id;
	__u8 zone;
	__u8 pad;
};

struct lb4_reverse_nat {
	__be32 address;
	__be16 port;
} __attribute__((packed));

/* Sizes as Cilium's CILIUM_LB_MAP_MAX_ENTRIES and LB4_REVERSE_NAT_SK_MAP_SIZE
 * defaults. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb4_key);
	__type(value, struct lb4_service);
	__uint(max_entries, 65536);
} cilium_lb4_services_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb4_backend);
	__uint(max_entries, 65536);
} cilium_lb4_backends_v3 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, struct lb4_reverse_nat);
	__uint(max_entries, 65536);
} cilium_lb4_reverse_nat SEC(".maps");

/* Session affinity (bpf/lib/lb.h): the agent writes the (service, backend) pairs of
 * services with ClientIP affinity into cilium_lb_affinity_match; the datapath
 * writes each client's backend into cilium_lb4_affinity. kpbench's programs do not
 * look them up (yet): the maps are created so the agent's writes land where
 * Cilium's do. */
union lb4_affinity_client_id {
	__u32 client_ip;
	__u64 client_cookie;  /* netns cookie, for the socket LB */
} __attribute__((packed));

struct lb4_affinity_key {
	union lb4_affinity_client_id client_id;
	__u16 rev_nat_id;
	__u8 netns_cookie:1,
	     reserved:7;
	__u8 pad1;
	__u32 pad2;
} __attribute__((packed));

struct lb_affinity_val {
	__u64 last_used;
	__u32 backend_id;
	__u32 pad;
} __attribute__((packed));

struct lb_affinity_match {
	__u32 backend_id;
	__u16 rev_nat_id;  /* network order */
	__u16 pad;
} __attribute__((packed));

/* loadBalancerSourceRanges: prefix = 32 bits of rev_nat_id and pad + the range. */
struct lb4_src_range_key {
	__u32 prefixlen;  /* struct bpf_lpm_trie_key's header */
	__u16 rev_nat_id;  /* network order */
	__u16 pad;
	__u32 addr;
};

/* Sizes as Cilium's CILIUM_LB_AFFINITY_MAP_MAX_ENTRIES and LB4_SRC_RANGE_MAP_SIZE
 * defaults (the agent's AffinityMapMaxEntries and SourceRangeMapMaxEntries). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb4_affinity_key);
	__type(value, struct lb_affinity_val);
	__uint(max_entries, 65536);
} cilium_lb4_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_affinity_match);
	__type(value, __u8);
	__uint(max_entries, 65536);
} cilium_lb_affinity_match SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lb4_src_range_key);
	__type(value, __u8);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cilium_lb4_source_range SEC(".maps");

/* lb4_lookup_service(key, false) for the external scope. */
static __always_inline struct lb4_service *lookup_service(struct lb4_key *key)
{
	struct lb4_service *svc;

	key->scope = LB_LOOKUP_SCOPE_EXT;
	key->backend_slot = 0;
	svc = bpf_map_lookup_elem(&cilium_lb4_services_v2, key);
	return svc && svc->count ? svc : NULL;
}

#endif

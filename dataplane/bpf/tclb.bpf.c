// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only
/*
 * kpbench: Cilium's per-packet load balancer for a TCP ClusterIP, the path Cilium
 * takes when socket LB is off (as with sidecar meshes): tc programs on the node's
 * veths, Cilium's service maps (cilium_lb4.h) and its own LRU connection tracking
 * (Cilium v1.17: bpf/bpf_lxc.c, bpf/lib/lb.h, bpf/lib/conntrack.h). Loaded by
 * dataplane/src/ebpf/datapath.rs.
 *
 *   kpb_tc_client   tc ingress on veth-client, packets from the client pod
 *                   (bpf_lxc's from-container: __per_packet_lb_svc_xlate_4):
 *                   service lookup; the service's conntrack entry gives the backend
 *                   of a known connection, else a random slot picks one and the
 *                   entry is created (lb4_local); the connection's own entry is
 *                   created with the reverse NAT index (ct_create4); DNAT of the
 *                   destination address and port with checksum fix-ups (lb4_xlate).
 *   kpb_tc_backend  tc ingress on veth-backend, packets from the backend pods
 *                   (bpf_lxc's from-container of the backend: ct_lookup4 finds the
 *                   reply, lb4_rev_nat): the source goes back to the service's
 *                   address and port, with checksum fix-ups.
 *
 * No netfilter rule is involved. Packets to anything but a service (a pod address)
 * pass with one service lookup on the way in and one conntrack lookup on the way back.
 */
#include <stddef.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>

#include "cilium_lb4.h"

/* struct ipv4_ct_tuple (bpf/lib/common.h): 14 bytes, packed. */
struct ipv4_ct_tuple {
	__be32 daddr;
	__be32 saddr;
	__be16 dport;
	__be16 sport;
	__u8 nexthdr;
	__u8 flags;
} __attribute__((packed));

#define TUPLE_F_OUT 0
#define TUPLE_F_IN 1
#define TUPLE_F_SERVICE 4

/* struct ct_entry (bpf/lib/common.h): 56 bytes. A service entry (TUPLE_F_SERVICE)
 * keeps the chosen backend in the union with rx_bytes. */
struct ct_entry {
	__u64 rx_packets;
	union {
		__u64 rx_bytes;
		__u64 backend_id;
	};
	__u64 tx_packets;
	__u64 tx_bytes;
	__u32 lifetime;
	__u16 rx_closing:1,
	      tx_closing:1,
	      nat46:1,
	      lb_loopback:1,
	      seen_non_syn:1,
	      node_port:1,
	      proxy_redirect:1,
	      dsr_internal:1,
	      from_l7lb:1,
	      reserved1:1,
	      from_tunnel:1,
	      reserved:5;
	__u16 rev_nat_index;  /* network order, as the service's */
	__u16 ifindex;
	__u8 tx_flags_seen;
	__u8 rx_flags_seen;
	__u32 src_sec_id;
	__u32 last_tx_report;
	__u32 last_rx_report;
};

/* Cilium's defaults: CT_CONNECTION_LIFETIME_TCP, CT_SYN_TIMEOUT, CT_CLOSE_TIMEOUT (s). */
#define CT_LIFETIME_TCP 21600
#define CT_SYN_TIMEOUT 60
#define CT_CLOSE_TIMEOUT 10

/* cilium_ct4_global (the TCP table). Cilium sizes it at 524288 by default; kpbench's
 * runs hold a few thousand connections at a time, and an LRU hash's lookup cost does
 * not depend on its size. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ipv4_ct_tuple);
	__type(value, struct ct_entry);
	__uint(max_entries, 131072);
} cilium_ct4_global SEC(".maps");

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04

/* The parsed headers of an IPv4 TCP packet. */
struct pkt {
	__be32 saddr, daddr;
	__be16 sport, dport;
	__u32 l4_off;
	__u8 flags;  /* TCP flags, low byte */
};

static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct tcphdr *tcp;
	__u32 ihl;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP)
		return 0;
	ihl = ip->ihl * 4;
	if (ihl < sizeof(*ip))
		return 0;
	tcp = (void *)ip + ihl;
	if ((void *)(tcp + 1) > end)
		return 0;
	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->sport = tcp->source;
	p->dport = tcp->dest;
	p->l4_off = ETH_HLEN + ihl;
	p->flags = ((__u8 *)tcp)[13];
	return 1;
}

static __always_inline __u32 mono_now(void)
{
	return (__u32)(bpf_ktime_get_ns() / 1000000000ULL);
}

/* ct_update_timeout and the flags and counters ct_lookup4 keeps, for a packet of
 * `len` bytes in direction `dir` (TUPLE_F_OUT: from the client's side). */
static __always_inline void ct_touch(struct ct_entry *e, __u8 flags, __u32 len, int dir)
{
	__u32 lifetime = CT_LIFETIME_TCP;

	if (dir == TUPLE_F_OUT) {
		__sync_fetch_and_add(&e->tx_packets, 1);
		__sync_fetch_and_add(&e->tx_bytes, len);
		if ((e->tx_flags_seen | flags) != e->tx_flags_seen)
			e->tx_flags_seen |= flags;
		if (flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
			e->tx_closing = 1;
	} else {
		__sync_fetch_and_add(&e->rx_packets, 1);
		__sync_fetch_and_add(&e->rx_bytes, len);
		if ((e->rx_flags_seen | flags) != e->rx_flags_seen)
			e->rx_flags_seen |= flags;
		if (flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
			e->rx_closing = 1;
	}
	if (!(flags & TCP_FLAG_SYN))
		e->seen_non_syn = 1;
	if (e->tx_closing || e->rx_closing)
		lifetime = CT_CLOSE_TIMEOUT;
	else if (!e->seen_non_syn)
		lifetime = CT_SYN_TIMEOUT;
	e->lifetime = mono_now() + lifetime;
}

/* lb4_select_backend_id(): a random slot, as Cilium's random selection. */
static __always_inline __u32 select_backend(struct lb4_key *key, const struct lb4_service *svc)
{
	struct lb4_service *slot;

	key->backend_slot = (bpf_get_prandom_u32() % svc->count) + 1;
	slot = bpf_map_lookup_elem(&cilium_lb4_services_v2, key);
	return slot ? slot->backend_id : 0;
}

/* Rewrites the address at `addr_off` and the port at `port_off` of an IPv4 TCP
 * packet, with the IP and TCP checksum fix-ups lb4_xlate and lb4_rev_nat make. */
static __always_inline int rewrite(struct __sk_buff *skb, __u32 l4_off, __u32 addr_off,
				   __be32 old_addr, __be32 new_addr, __u32 port_off,
				   __be16 old_port, __be16 new_port)
{
	__u32 tcp_csum = l4_off + offsetof(struct tcphdr, check);

	if (bpf_skb_store_bytes(skb, addr_off, &new_addr, 4, 0) < 0 ||
	    bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old_addr,
				new_addr, 4) < 0 ||
	    bpf_l4_csum_replace(skb, tcp_csum, old_addr, new_addr, BPF_F_PSEUDO_HDR | 4) < 0)
		return -1;
	if (old_port != new_port &&
	    (bpf_l4_csum_replace(skb, tcp_csum, old_port, new_port, 2) < 0 ||
	     bpf_skb_store_bytes(skb, port_off, &new_port, 2, 0) < 0))
		return -1;
	return 0;
}

SEC("classifier")
int kpb_tc_client(struct __sk_buff *skb)
{
	struct lb4_key key = {};
	struct lb4_service *svc;
	struct lb4_backend *backend = NULL;
	struct ipv4_ct_tuple tuple = {};
	struct ct_entry *entry, fresh = {};
	struct pkt p;
	__u32 backend_id = 0;
	__be32 new_addr;
	__be16 new_port;
	__u16 rev_nat_index;

	if (!parse(skb, &p))
		return TC_ACT_OK;

	key.address = p.daddr;
	key.dport = p.dport;
	key.proto = IPPROTO_TCP;
	svc = lookup_service(&key);
	if (!svc)
		return TC_ACT_OK;
	rev_nat_index = svc->rev_nat_index;

	/* lb4_local(): the service's conntrack entry, keyed by the packet as sent. */
	tuple.daddr = p.daddr;
	tuple.saddr = p.saddr;
	tuple.dport = p.dport;
	tuple.sport = p.sport;
	tuple.nexthdr = IPPROTO_TCP;
	tuple.flags = TUPLE_F_SERVICE;
	entry = bpf_map_lookup_elem(&cilium_ct4_global, &tuple);
	if (entry) {
		backend_id = (__u32)entry->backend_id;
		backend = bpf_map_lookup_elem(&cilium_lb4_backends_v3, &backend_id);
		if (backend)
			ct_touch(entry, p.flags, skb->len, TUPLE_F_OUT);
	}
	if (!backend) {
		/* New, or its backend is gone: select one and (re)write the entry. */
		backend_id = select_backend(&key, svc);
		if (!backend_id)
			return TC_ACT_OK;
		backend = bpf_map_lookup_elem(&cilium_lb4_backends_v3, &backend_id);
		if (!backend)
			return TC_ACT_OK;
		fresh.backend_id = backend_id;
		fresh.rev_nat_index = rev_nat_index;
		ct_touch(&fresh, p.flags, skb->len, TUPLE_F_OUT);
		bpf_map_update_elem(&cilium_ct4_global, &tuple, &fresh, BPF_ANY);
	}
	new_addr = backend->address;
	new_port = backend->port;

	/* The connection's own entry, keyed by the packet after DNAT (ct_create4 with the
	 * reverse NAT index, so the reply is translated back). */
	tuple.daddr = new_addr;
	tuple.dport = new_port;
	tuple.flags = TUPLE_F_OUT;
	entry = bpf_map_lookup_elem(&cilium_ct4_global, &tuple);
	if (entry && entry->rev_nat_index == rev_nat_index) {
		ct_touch(entry, p.flags, skb->len, TUPLE_F_OUT);
	} else {
		__builtin_memset(&fresh, 0, sizeof(fresh));
		fresh.rev_nat_index = rev_nat_index;
		ct_touch(&fresh, p.flags, skb->len, TUPLE_F_OUT);
		bpf_map_update_elem(&cilium_ct4_global, &tuple, &fresh, BPF_ANY);
	}

	/* lb4_xlate(): DNAT. */
	if (rewrite(skb, p.l4_off, ETH_HLEN + offsetof(struct iphdr, daddr), p.daddr, new_addr,
		    p.l4_off + offsetof(struct tcphdr, dest), p.dport, new_port) < 0)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

SEC("classifier")
int kpb_tc_backend(struct __sk_buff *skb)
{
	struct ipv4_ct_tuple tuple = {};
	struct lb4_reverse_nat *nat;
	struct ct_entry *entry;
	struct pkt p;
	__u16 rev_nat_index;
	__be32 vip;
	__be16 vport;

	if (!parse(skb, &p))
		return TC_ACT_OK;

	/* ct_lookup4() of the reply: the forward tuple it answers. */
	tuple.daddr = p.saddr;
	tuple.saddr = p.daddr;
	tuple.dport = p.sport;
	tuple.sport = p.dport;
	tuple.nexthdr = IPPROTO_TCP;
	tuple.flags = TUPLE_F_OUT;
	entry = bpf_map_lookup_elem(&cilium_ct4_global, &tuple);
	if (!entry)
		return TC_ACT_OK;
	ct_touch(entry, p.flags, skb->len, TUPLE_F_IN);
	rev_nat_index = entry->rev_nat_index;
	if (!rev_nat_index)
		return TC_ACT_OK;

	/* lb4_rev_nat(): the service's address and port back as the source. */
	nat = bpf_map_lookup_elem(&cilium_lb4_reverse_nat, &rev_nat_index);
	if (!nat)
		return TC_ACT_OK;
	vip = nat->address;
	vport = nat->port;
	if (rewrite(skb, p.l4_off, ETH_HLEN + offsetof(struct iphdr, saddr), p.saddr, vip,
		    p.l4_off + offsetof(struct tcphdr, source), p.sport, vport) < 0)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

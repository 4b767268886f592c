// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only
/*
 * kpbench: in-kernel transit timing through the node namespace (tc clsact,
 * direct-action). Loaded once per case by harness/src/datapath/transit/probes.rs;
 * both programs share these maps.
 *
 *   transit_in   tc ingress on veth-client (SYN, client -> backend)
 *                tc ingress on veth-backend (SYN-ACK, backend -> client)
 *   transit_out  tc egress on veth-backend (SYN)
 *                tc egress on veth-client (SYN-ACK)
 *
 * The SYN is keyed by its sequence number and the SYN-ACK by ack_seq - 1 (the same
 * number): NAT rewrites addresses and ports, never sequence numbers. Each key has a
 * slot in a fixed array, tagged with the key (cheaper than an LRU hash). The start
 * stamp is written after the slot is filled, and the stop clock is read before any
 * parsing, so the interval holds only the node's own work. A matched SYN or SYN-ACK
 * goes to userspace as an exact sample through the ring buffer, labelled by the
 * service address the client dialled (the SYN's destination at ingress, before DNAT;
 * the SYN-ACK's source at egress, after reverse NAT).
 *
 * A UDP target is timed the same way on its first datagram and the reply: the pass
 * sends one datagram per flow whose payload starts with a probe header (a magic number
 * and a random key; the echo in the backend namespace answers with the reply's magic
 * and the same key). NAT rewrites addresses and ports, never the payload, so the key
 * pairs ingress with egress as the sequence number does for TCP. Other UDP is ignored.
 *
 * Every other TCP packet is timed ingress -> egress through a per-CPU slot tagged
 * with (seq, ack_seq): the forward path of one packet is one softirq on one CPU, so
 * no other packet comes between its ingress and egress there. Its nanoseconds go
 * into per-CPU counters only (the dataplane's CPU, not a latency sample).
 *
 * Both programs only observe: they return TC_ACT_UNSPEC (TCX_NEXT), so the packet
 * goes on to any other tc program on the link and then on its way.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* Must match harness/src/datapath/transit/probes.rs. */
#define SLOTS 4096 /* a power of two */
#define KIND_SYN 1
#define KIND_SYNACK 2
#define KIND_UDP 3       /* a UDP target's first datagram */
#define KIND_UDP_REPLY 4 /* and its reply */
#define PROBE_REQUEST 0x4b504251 /* "KPBQ" */
#define PROBE_REPLY 0x4b504252   /* "KPBR" */

/* The head of a probe datagram's payload, network order. */
struct probe_payload {
	__u32 magic;
	__u32 key;
};

/* One exact sample, as userspace reads it from the ring buffer (24 bytes). */
struct sample {
	__u64 ns;    /* transit through the node */
	__u32 key;   /* the SYN's sequence number */
	__u32 addr;  /* label: service (or direct) address, network order */
	__u16 port;  /* label: its port, network order */
	__u8 kind;   /* KIND_SYN or KIND_SYNACK */
	__u8 pad[5];
};

/* A pending SYN or SYN-ACK. */
struct slot {
	__u64 start;
	__u32 key;
	__u32 addr;  /* the SYN's destination before DNAT, network order */
	__u16 port;  /* its port, network order */
	__u16 pending;
	__u32 pad;
};

/* The in-flight packet of this CPU (every TCP packet but the SYN and SYN-ACK). */
struct inflight {
	__u64 start;
	__u32 seq;
	__u32 ack;
};

/* Per-CPU counters; userspace sums them over CPUs. Order must match probes.rs. */
struct counters {
	__u64 transit_ns;       /* all TCP packets timed, SYN and SYN-ACK included */
	__u64 packets;          /* how many that was */
	__u64 syn_in;           /* SYNs stamped at ingress */
	__u64 syn_out;          /* SYNs matched at egress (samples) */
	__u64 syn_restarted;    /* a retransmitted SYN overwrote its own pending start */
	__u64 syn_evicted;      /* a pending SYN lost its slot to another key */
	__u64 synack_in;
	__u64 synack_out;
	__u64 synack_restarted;
	__u64 synack_evicted;
	__u64 other_unmatched;  /* a non-SYN packet left with no start on this CPU */
	__u64 ring_full;        /* samples lost: the ring buffer was full */
	__u64 udp_in;           /* probe datagrams stamped at ingress */
	__u64 udp_out;          /* and matched at egress (samples) */
	__u64 udp_reply_in;
	__u64 udp_reply_out;
};

/* SYNs in [0, SLOTS), SYN-ACKs in [SLOTS, 2 * SLOTS), probe datagrams and their
 * replies in the next two: one map, so each lookup is a constant map the verifier can
 * inline. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4 * SLOTS);
	__type(key, __u32);
	__type(value, struct slot);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct inflight);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counters);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} samples SEC(".maps");

/*
 * The IPv4 header of a packet carrying `proto` with its transport header in bounds
 * (`hdr_len` bytes after the IP header), or NULL; `*l4_out` is that header.
 */
static __always_inline struct iphdr *ipv4_of(struct __sk_buff *skb, __u8 proto, __u32 hdr_len,
					     void **l4_out)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	void *l4;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return NULL;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->protocol != proto || ip->ihl < 5)
		return NULL;
	/* Fragments other than the first carry no transport header. */
	if (ip->frag_off & bpf_htons(0x1fff))
		return NULL;
	l4 = (void *)ip + ip->ihl * 4;
	if (l4 + hdr_len > data_end)
		return NULL;
	*l4_out = l4;
	return ip;
}

/* The TCP header of an IPv4 packet, or NULL. */
static __always_inline struct tcphdr *tcp_of(struct __sk_buff *skb, struct iphdr **ip_out)
{
	void *tcp = NULL;

	*ip_out = ipv4_of(skb, IPPROTO_TCP, sizeof(struct tcphdr), &tcp);
	return *ip_out ? tcp : NULL;
}

/* The UDP header of an IPv4 packet, or NULL. */
static __always_inline struct udphdr *udp_of(struct __sk_buff *skb, struct iphdr **ip_out)
{
	void *udp = NULL;

	*ip_out = ipv4_of(skb, IPPROTO_UDP, sizeof(struct udphdr), &udp);
	return *ip_out ? udp : NULL;
}

/*
 * Marks `s` pending for `key`, labelled with the destination dialled, and stamps it.
 * The clock is read last: everything before it is outside the interval.
 */
static __always_inline void stamp(struct slot *s, __u32 key, __u32 addr, __u16 port)
{
	s->key = key;
	s->addr = addr;
	s->port = port;
	s->pending = 1;
	s->start = bpf_ktime_get_ns();
}

/*
 * Sends one sample to userspace, labelled: a request (SYN or probe datagram) with the
 * destination its slot kept (post-DNAT here), a reply with its source.
 */
static __always_inline void emit(struct counters *c, const struct slot *s, __u64 ns, __u32 key,
				 int kind, int request, __u32 saddr, __u16 sport)
{
	struct sample *out = bpf_ringbuf_reserve(&samples, sizeof(*out), 0);

	if (!out) {
		c->ring_full++;
		return;
	}
	out->ns = ns;
	out->key = key;
	out->kind = kind;
	out->addr = request ? s->addr : saddr;
	out->port = request ? s->port : sport;
	__builtin_memset(out->pad, 0, sizeof(out->pad));
	/* Userspace polls: no wakeup per sample. */
	bpf_ringbuf_submit(out, BPF_RB_NO_WAKEUP);
}

/*
 * A probe datagram's kind (KIND_UDP or KIND_UDP_REPLY, 0 for any other datagram), its
 * key and its slot.
 */
static __always_inline int probe_datagram(struct __sk_buff *skb, struct udphdr *udp,
					  __u32 *key, __u32 *idx)
{
	void *data_end = (void *)(long)skb->data_end;
	struct probe_payload *p = (void *)(udp + 1);
	__u32 magic;

	if ((void *)(p + 1) > data_end)
		return 0;
	magic = bpf_ntohl(p->magic);
	*key = bpf_ntohl(p->key);
	if (magic == PROBE_REQUEST) {
		*idx = 2 * SLOTS + (*key & (SLOTS - 1));
		return KIND_UDP;
	}
	if (magic == PROBE_REPLY) {
		*idx = 3 * SLOTS + (*key & (SLOTS - 1));
		return KIND_UDP_REPLY;
	}
	return 0;
}

static __always_inline struct counters *counters_here(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&counters, &zero);
}

/*
 * A connection-opening packet's kind (KIND_SYN or KIND_SYNACK, 0 for any other), its
 * key (the SYN's sequence number; for the SYN-ACK its ack_seq - 1, the same number)
 * and its slot (SYNs in the first SLOTS, SYN-ACKs in the next).
 */
static __always_inline int handshake(const struct tcphdr *tcp, __u32 *key, __u32 *idx)
{
	if (!tcp->syn)
		return 0;
	if (!tcp->ack) {
		*key = bpf_ntohl(tcp->seq);
		*idx = *key & (SLOTS - 1);
		return KIND_SYN;
	}
	*key = bpf_ntohl(tcp->ack_seq) - 1;
	*idx = SLOTS + (*key & (SLOTS - 1));
	return KIND_SYNACK;
}

/* transit_in for a probe datagram: stamps its slot (other UDP passes untouched). */
static __always_inline int udp_in(struct __sk_buff *skb)
{
	struct iphdr *ip;
	struct udphdr *udp = udp_of(skb, &ip);
	struct counters *c;
	struct slot *s;
	__u32 key, idx;
	int kind;

	if (!udp)
		return TC_ACT_UNSPEC;
	kind = probe_datagram(skb, udp, &key, &idx);
	if (!kind)
		return TC_ACT_UNSPEC;
	s = bpf_map_lookup_elem(&slots, &idx);
	c = counters_here();
	if (!s || !c)
		return TC_ACT_UNSPEC;
	if (kind == KIND_UDP)
		c->udp_in++;
	else
		c->udp_reply_in++;
	stamp(s, key, ip->daddr, udp->dest);
	return TC_ACT_UNSPEC;
}

/* transit_out for a probe datagram whose egress clock read `now`: its sample. */
static __always_inline int udp_out(struct __sk_buff *skb, __u64 now)
{
	struct iphdr *ip;
	struct udphdr *udp = udp_of(skb, &ip);
	struct counters *c;
	struct slot *s;
	__u32 key, idx;
	int kind;

	if (!udp)
		return TC_ACT_UNSPEC;
	kind = probe_datagram(skb, udp, &key, &idx);
	if (!kind)
		return TC_ACT_UNSPEC;
	c = counters_here();
	s = bpf_map_lookup_elem(&slots, &idx);
	if (!c || !s || !s->pending || s->key != key || s->start > now)
		return TC_ACT_UNSPEC;
	s->pending = 0;
	if (kind == KIND_UDP)
		c->udp_out++;
	else
		c->udp_reply_out++;
	emit(c, s, now - s->start, key, kind, kind == KIND_UDP, ip->saddr, udp->source);
	return TC_ACT_UNSPEC;
}

SEC("classifier")
int transit_in(struct __sk_buff *skb)
{
	struct iphdr *ip;
	struct tcphdr *tcp = tcp_of(skb, &ip);
	struct counters *c;
	struct slot *s;
	__u32 key, idx, zero = 0;
	int kind;

	if (!tcp)
		return udp_in(skb);
	kind = handshake(tcp, &key, &idx);
	if (!kind) {
		struct inflight *f = bpf_map_lookup_elem(&inflight, &zero);

		if (!f)
			return TC_ACT_UNSPEC;
		f->seq = tcp->seq;
		f->ack = tcp->ack_seq;
		f->start = bpf_ktime_get_ns();
		return TC_ACT_UNSPEC;
	}
	s = bpf_map_lookup_elem(&slots, &idx);
	c = counters_here();
	if (!s || !c)
		return TC_ACT_UNSPEC;
	if (s->pending) {
		if (s->key == key) {
			if (kind == KIND_SYN)
				c->syn_restarted++;
			else
				c->synack_restarted++;
		} else {
			if (kind == KIND_SYN)
				c->syn_evicted++;
			else
				c->synack_evicted++;
		}
	}
	if (kind == KIND_SYN)
		c->syn_in++;
	else
		c->synack_in++;
	stamp(s, key, ip->daddr, tcp->dest);
	return TC_ACT_UNSPEC;
}

SEC("classifier")
int transit_out(struct __sk_buff *skb)
{
	/* First: everything below is outside the interval. */
	__u64 now = bpf_ktime_get_ns();
	struct iphdr *ip;
	struct tcphdr *tcp = tcp_of(skb, &ip);
	struct counters *c;
	struct slot *s;
	__u32 key, idx, zero = 0;
	__u64 ns;
	int kind;

	if (!tcp)
		return udp_out(skb, now);
	c = counters_here();
	if (!c)
		return TC_ACT_UNSPEC;
	kind = handshake(tcp, &key, &idx);
	if (!kind) {
		struct inflight *f = bpf_map_lookup_elem(&inflight, &zero);

		if (!f)
			return TC_ACT_UNSPEC;
		if (f->start && f->start <= now && f->seq == tcp->seq && f->ack == tcp->ack_seq) {
			c->transit_ns += now - f->start;
			c->packets++;
		} else {
			c->other_unmatched++;
		}
		f->start = 0;
		return TC_ACT_UNSPEC;
	}
	s = bpf_map_lookup_elem(&slots, &idx);
	if (!s || !s->pending || s->key != key || s->start > now)
		return TC_ACT_UNSPEC;
	ns = now - s->start;
	s->pending = 0;
	c->transit_ns += ns;
	c->packets++;
	if (kind == KIND_SYN)
		c->syn_out++;
	else
		c->synack_out++;
	emit(c, s, ns, key, kind, kind == KIND_SYN, ip->saddr, tcp->source);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";

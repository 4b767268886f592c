//! Which kernel modules go into the lab's initramfs, and their dependencies.
//!
//! Resolution is pure: it reads the text of `modules.dep`, `modules.softdep` and
//! `modules.alias` (as `depmod` writes them) and returns module paths in load order.
//! Modules the kernel does not have (or has built in) are simply left out: the guest
//! loads what exists and a missing feature shows up as the command's own error.

use std::collections::{BTreeMap, BTreeSet};

/// Modules a kube-proxy dataplane can use, by mode, plus what the lab itself needs
/// (virtio for the results disk). Names as `modprobe` takes them.
pub const WANTED_MODULES: &[&str] = &[
    // The lab's results disk.
    "virtio_pci",
    "virtio_blk",
    // Links of the topology.
    "dummy",
    "veth",
    // Conntrack and NAT, shared by every mode.
    "nf_conntrack",
    "nf_conntrack_netlink",
    "nf_nat",
    "nf_defrag_ipv4",
    "nf_defrag_ipv6",
    "nf_reject_ipv4",
    "nf_reject_ipv6",
    "nfnetlink",
    // IPVS and its schedulers.
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_lc",
    "ip_vs_wlc",
    "ip_vs_sh",
    "ip_vs_dh",
    "ip_vs_sed",
    "ip_vs_nq",
    "ip_vs_mh",
    // nftables, as kube-proxy's nftables mode and iptables-nft use it.
    "nf_tables",
    "nft_chain_nat",
    "nft_nat",
    "nft_masq",
    "nft_redir",
    "nft_numgen",
    "nft_ct",
    "nft_fib",
    "nft_fib_ipv4",
    "nft_fib_ipv6",
    "nft_fib_inet",
    "nft_reject",
    "nft_reject_ipv4",
    "nft_reject_inet",
    "nft_limit",
    "nft_hash",
    "nft_objref",
    "nft_log",
    "nft_counter",
    "nft_compat",
    // x_tables, for iptables-legacy and the xt matches iptables-nft uses via nft_compat.
    "x_tables",
    "ip_tables",
    "ip6_tables",
    "iptable_nat",
    "iptable_filter",
    "iptable_mangle",
    "iptable_raw",
    "ip6table_nat",
    "ip6table_filter",
    "ip6table_mangle",
    "xt_statistic",
    "xt_comment",
    "xt_mark",
    "xt_connmark",
    "xt_conntrack",
    "xt_state",
    "xt_addrtype",
    "xt_set",
    "xt_MASQUERADE",
    "xt_nat",
    "xt_tcpudp",
    "xt_multiport",
    "xt_limit",
    "xt_ipvs",
    // kube-proxy's IPVS mode matches `physdev ! --physdev-is-in` for external IPs.
    "xt_physdev",
    "xt_LOG",
    "xt_REJECT",
    "ipt_REJECT",
    "ip6t_REJECT",
    // ipset, as kube-proxy's IPVS mode uses it.
    "ip_set",
    "ip_set_hash_ip",
    "ip_set_hash_ipport",
    "ip_set_hash_ipportip",
    "ip_set_hash_ipportnet",
    "ip_set_hash_net",
    "ip_set_hash_netport",
    "ip_set_bitmap_port",
    // tc clsact + cls_bpf before tcx (6.6): the ebpf-tc mode's load balancer and the
    // in-kernel transit probes (datapath/transit). The socket LB (ebpf) needs no module.
    "sch_ingress",
    "cls_bpf",
];

/// A module's canonical name: file stem without `.ko` and compression suffix, `-` as `_`.
pub fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = ["ko.xz", "ko.zst", "ko.gz", "ko"]
        .iter()
        .find_map(|ext| base.strip_suffix(&format!(".{ext}")))
        .unwrap_or(base);
    stem.replace('-', "_")
}

/// The parsed dependency information of one kernel's modules.
#[derive(Debug, Default, Clone)]
pub struct ModuleIndex {
    /// name -> (path relative to the modules dir, hard dependencies' names)
    modules: BTreeMap<String, (String, Vec<String>)>,
    /// name -> soft dependencies (pre and post), as names or aliases
    softdeps: BTreeMap<String, Vec<String>>,
    /// exact alias -> module name (glob aliases are ignored)
    aliases: BTreeMap<String, String>,
}

/// The outcome of [`ModuleIndex::resolve`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Module paths (relative to `lib/modules/<release>/`), dependencies first.
    pub paths: Vec<String>,
    /// Requested names that are loadable modules (what the guest's init modprobes).
    pub load: Vec<String>,
    /// Requested names with no module: built in (=y), or not configured at all.
    pub absent: Vec<String>,
}

impl ModuleIndex {
    /// Parses the text of `modules.dep`, `modules.softdep` and `modules.alias`
    /// (the latter two may be empty).
    pub fn parse(dep: &str, softdep: &str, alias: &str) -> Self {
        let mut index = ModuleIndex::default();
        for line in dep.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            let deps = deps.split_whitespace().map(module_name).collect();
            index
                .modules
                .insert(module_name(path), (path.to_string(), deps));
        }
        for line in softdep.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("softdep") {
                continue;
            }
            let Some(name) = words.next() else { continue };
            let deps = words
                .filter(|w| !w.ends_with(':'))
                .map(|w| w.replace('-', "_"))
                .collect();
            index.softdeps.insert(name.replace('-', "_"), deps);
        }
        for line in alias.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("alias") {
                continue;
            }
            if let (Some(a), Some(m)) = (words.next(), words.next()) {
                if !a.contains(['*', '?', '[']) {
                    index
                        .aliases
                        .entry(a.replace('-', "_"))
                        .or_insert_with(|| m.replace('-', "_"));
                }
            }
        }
        index
    }

    /// Number of modules in the index.
    pub fn len(&self) -> usize {
        self.modules.len()
    }

    /// True when the index holds no module.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    fn lookup(&self, name: &str) -> Option<&str> {
        let name = name.replace('-', "_");
        if let Some((key, _)) = self.modules.get_key_value(&name) {
            return Some(key);
        }
        let target = self.aliases.get(&name)?;
        self.modules.get_key_value(target).map(|(k, _)| k.as_str())
    }

    /// The closure of `wanted` over hard and soft dependencies, dependencies first.
    pub fn resolve<S: AsRef<str>>(&self, wanted: &[S]) -> Resolution {
        let mut out = Resolution::default();
        let mut seen = BTreeSet::new();
        for w in wanted {
            let w = w.as_ref();
            match self.lookup(w) {
                Some(name) => {
                    let name = name.to_string();
                    if !out.load.contains(&name) {
                        out.load.push(name.clone());
                    }
                    self.visit(&name, &mut seen, &mut out.paths);
                }
                None => out.absent.push(w.to_string()),
            }
        }
        out
    }

    fn visit(&self, name: &str, seen: &mut BTreeSet<String>, paths: &mut Vec<String>) {
        if !seen.insert(name.to_string()) {
            return;
        }
        let soft = self.softdeps.get(name).cloned().unwrap_or_default();
        let (path, deps) = match self.modules.get(name) {
            Some(entry) => entry.clone(),
            None => return,
        };
        for dep in deps.iter().chain(soft.iter()) {
            // A soft dependency that is built in or absent is fine to skip.
            if let Some(dep) = self.lookup(dep) {
                let dep = dep.to_string();
                self.visit(&dep, seen, paths);
            }
        }
        paths.push(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/net/netfilter/ipvs/ip_vs_rr.ko: kernel/net/netfilter/ipvs/ip_vs.ko kernel/net/netfilter/nf_conntrack.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/ipvs/ip_vs.ko: kernel/net/netfilter/nf_conntrack.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/nf_conntrack.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
kernel/crypto/crc32c_generic.ko.xz:
kernel/drivers/net/dummy.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
";
    const SOFTDEP: &str = "# comment\nsoftdep libcrc32c pre: crc32c\n";
    const ALIAS: &str = "alias crypto-crc32c crc32c_generic\nalias crc32c crc32c_generic\nalias pci:v*d* virtio_pci\n";

    #[test]
    fn names_are_canonical() {
        assert_eq!(module_name("kernel/net/netfilter/ipvs/ip_vs.ko"), "ip_vs");
        assert_eq!(module_name("kernel/a/crc32c-intel.ko.zst"), "crc32c_intel");
        assert_eq!(module_name("x/nft_nat.ko.xz"), "nft_nat");
        assert_eq!(module_name("dummy"), "dummy");
    }

    #[test]
    fn closure_puts_dependencies_first() {
        let index = ModuleIndex::parse(DEP, "", "");
        let r = index.resolve(&["ip_vs_rr"]);
        assert_eq!(
            r.paths,
            vec![
                "kernel/lib/libcrc32c.ko",
                "kernel/net/netfilter/nf_conntrack.ko",
                "kernel/net/netfilter/ipvs/ip_vs.ko",
                "kernel/net/netfilter/ipvs/ip_vs_rr.ko",
            ]
        );
        assert_eq!(r.load, vec!["ip_vs_rr"]);
        // Every module comes after all of its dependencies, each exactly once.
        for (i, path) in r.paths.iter().enumerate() {
            let (_, deps) = &index.modules[&module_name(path)];
            for d in deps {
                let at = r.paths.iter().position(|p| module_name(p) == *d).unwrap();
                assert!(at < i, "{d} must load before {path}");
            }
        }
        assert!(r.absent.is_empty());
    }

    #[test]
    fn soft_dependencies_resolve_through_aliases() {
        let index = ModuleIndex::parse(DEP, SOFTDEP, ALIAS);
        let r = index.resolve(&["nf_conntrack"]);
        assert_eq!(
            r.paths,
            vec![
                "kernel/crypto/crc32c_generic.ko.xz",
                "kernel/lib/libcrc32c.ko",
                "kernel/net/netfilter/nf_conntrack.ko",
            ]
        );
    }

    #[test]
    fn missing_and_duplicate_names() {
        let index = ModuleIndex::parse(DEP, "", ALIAS);
        let r = index.resolve(&["dummy", "veth", "dummy", "crc32c-intel", "crypto-crc32c"]);
        assert_eq!(
            r.paths,
            vec![
                "kernel/drivers/net/dummy.ko",
                "kernel/arch/x86/crypto/crc32c-intel.ko",
                "kernel/crypto/crc32c_generic.ko.xz",
            ]
        );
        assert_eq!(r.load, vec!["dummy", "crc32c_intel", "crc32c_generic"]);
        assert_eq!(r.absent, vec!["veth"]);
        assert_eq!(index.len(), 7);
    }
}

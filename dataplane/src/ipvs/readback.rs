//! The IPVS mode's state as `ipvsadm -S -n`, `ipset list` and `iptables-save` list it,
//! normalised for comparing the kernel with the stand-ins (the conformance tests).
//! Each normalisation says why it hides nothing the stand-in claims to model.

use crate::floor::error::ApplyError;
use crate::floor::sync::Executor;
use crate::xtables::Xtables;

/// The IPVS mode's three listings: `ipvsadm -S -n`, `ipset list` and `iptables-save`.
pub(crate) fn read(io: &mut dyn Executor) -> Result<String, ApplyError> {
    // Lines sorted: ipvsadm prints services in the kernel's hash order and real
    // servers in insertion order, neither of which the mode's behaviour depends on.
    let mut ipvsadm: Vec<String> = io
        .listing("ipvsadm", &["-S", "-n"])?
        .lines()
        .map(str::to_string)
        .collect();
    ipvsadm.sort();
    let sets = ipsets(&io.listing("ipset", &["list"])?);
    let save = crate::xtables::readback::save(io, Xtables::nft())?;
    Ok(format!(
        "--- ipvsadm -S -n\n{}\n--- ipset list\n{sets}--- iptables-save\n{save}",
        ipvsadm.join("\n")
    ))
}

/// `ipset list`, normalised: each set's name, type and header, then its members
/// sorted. Dropped: `Revision` (the kernel module's version of the set type, not
/// state), `Size in memory` (an allocation detail), `References` (how many iptables
/// rules use the set: the iptables-save part of the read-back shows those rules),
/// the hash's random `initval` and its kernel-chosen `bucketsize` in the header, the
/// member order (the hash's) and the order of the sets (creation order).
fn ipsets(text: &str) -> String {
    let mut out = String::new();
    let mut members: Vec<&str> = Vec::new();
    let mut in_members = false;
    let flush = |out: &mut String, members: &mut Vec<&str>| {
        members.sort();
        for m in members.drain(..) {
            out.push_str(&format!("  {m}\n"));
        }
    };
    for line in text.lines() {
        if line.is_empty() {
            in_members = false;
            continue;
        }
        if in_members {
            members.push(line.trim());
            continue;
        }
        if let Some(name) = line.strip_prefix("Name: ") {
            flush(&mut out, &mut members);
            out.push_str(&format!("set {name}\n"));
        } else if let Some(kind) = line.strip_prefix("Type: ") {
            out.push_str(&format!("  type {kind}\n"));
        } else if let Some(header) = line.strip_prefix("Header: ") {
            let header: Vec<&str> = header.split_whitespace().collect();
            let mut kept = Vec::new();
            let mut words = header.iter();
            while let Some(w) = words.next() {
                if *w == "initval" || *w == "bucketsize" {
                    words.next();
                    continue;
                }
                kept.push(*w);
            }
            out.push_str(&format!("  header {}\n", kept.join(" ")));
        } else if line.starts_with("Number of entries:") {
            out.push_str(&format!("  {}\n", line.trim().to_lowercase()));
        } else if line == "Members:" {
            in_members = true;
        }
    }
    flush(&mut out, &mut members);
    sort_sets(&out)
}

/// The sets' blocks in name order.
fn sort_sets(text: &str) -> String {
    let mut blocks: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("set ") || blocks.is_empty() {
            blocks.push(String::new());
        }
        let last = blocks.last_mut().expect("pushed above");
        last.push_str(line);
        last.push('\n');
    }
    blocks.sort();
    blocks.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipsets_lose_only_what_is_not_state() {
        let kernel = "Name: KUBE-CLUSTER-IP\nType: hash:ip,port\nRevision: 6\nHeader: family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1a2b3c4d\nSize in memory: 456\nReferences: 2\nNumber of entries: 2\nMembers:\n10.96.0.2,tcp:80\n10.96.0.1,tcp:80\n\nName: KUBE-LOOP-BACK\nType: hash:ip,port,ip\nRevision: 0\nHeader: family inet hashsize 1024 maxelem 65536\nSize in memory: 0\nReferences: 0\nNumber of entries: 0\nMembers:\n";
        assert_eq!(
            ipsets(kernel),
            "set KUBE-CLUSTER-IP\n  type hash:ip,port\n  header family inet hashsize 1024 maxelem 65536\n  number of entries: 2\n  10.96.0.1,tcp:80\n  10.96.0.2,tcp:80\nset KUBE-LOOP-BACK\n  type hash:ip,port,ip\n  header family inet hashsize 1024 maxelem 65536\n  number of entries: 0\n"
        );
    }
}

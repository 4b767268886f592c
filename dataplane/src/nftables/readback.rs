//! `nft list table ip kube-proxy`, normalised for comparing the kernel with the nft
//! stand-in.

use std::collections::BTreeMap;

use crate::floor::error::ApplyError;
use crate::floor::sync::Executor;

/// The table as both sides list it, normalised ("" when there is no table).
pub(crate) fn table(io: &mut dyn Executor) -> Result<String, ApplyError> {
    Ok(normalise(
        &io.listing("nft", &["list", "table", "ip", "kube-proxy"])?,
    ))
}

/// One set, map or chain of the listing.
#[derive(Default)]
struct Block {
    /// `type T hook H priority P` of a base chain, the priority as a number.
    hook: Option<String>,
    rules: Vec<String>,
    elements: Vec<String>,
}

/// Normalised `nft list table`:
/// - blocks (sets, maps, chains) in name order, each chain's rules in their order
///   (which decides a packet's path), each set's elements sorted (the kernel lists a
///   hash or rbtree set in its own order, which no lookup depends on);
/// - comments on the table, sets and chains, and set declarations (`type`, `flags`,
///   `size`, an affinity set's `timeout`) dropped: kube-proxy writes them once at creation and reads none of them
///   back, and the stand-in does not model them; a rule's own `comment` is kept;
/// - a base chain's priority as a number (nft prints `dstnat - 10` for -110 on
///   prerouting: the same priority), and its `policy accept` (the default) dropped.
pub(crate) fn normalise(text: &str) -> String {
    let mut blocks: BTreeMap<String, Block> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut elements: Option<String> = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(acc) = elements.as_mut() {
            acc.push(' ');
            acc.push_str(line);
            if line.ends_with('}') {
                let body = elements.take().expect("collecting");
                let block = current.as_ref().and_then(|c| blocks.get_mut(c));
                if let Some(b) = block {
                    b.elements = split_elements(&body);
                }
            }
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["table", ..] => {}
            [kind @ ("set" | "map" | "chain"), name, "{"] => {
                let key = format!("{kind} {name}");
                blocks.entry(key.clone()).or_default();
                current = Some(key);
            }
            ["}"] => current = None,
            ["comment", ..] | ["flags", ..] | ["size", ..] | ["policy", ..] | ["timeout", ..] => {}
            ["type", ..] if line.contains(" hook ") => {
                if let Some(b) = current.as_ref().and_then(|c| blocks.get_mut(c)) {
                    b.hook = Some(hook(line));
                }
            }
            ["type", ..] => {}
            ["elements", "=", ..] => {
                let body = line.trim_start_matches("elements =").trim().to_string();
                if body.ends_with('}') {
                    if let Some(b) = current.as_ref().and_then(|c| blocks.get_mut(c)) {
                        b.elements = split_elements(&body);
                    }
                } else {
                    elements = Some(body);
                }
            }
            _ => match current.as_ref().and_then(|c| blocks.get_mut(c)) {
                Some(b) => b.rules.push(line.to_string()),
                None => blocks
                    .entry(String::new())
                    .or_default()
                    .rules
                    .push(line.into()),
            },
        }
    }
    render(&blocks)
}

fn render(blocks: &BTreeMap<String, Block>) -> String {
    let mut out = String::new();
    for (name, b) in blocks {
        out.push_str(&format!("{name}\n"));
        if let Some(h) = &b.hook {
            out.push_str(&format!("  {h}\n"));
        }
        for r in &b.rules {
            out.push_str(&format!("  rule {r}\n"));
        }
        for e in &b.elements {
            out.push_str(&format!("  element {e}\n"));
        }
    }
    out
}

/// `{ a, b, c }` split into its elements, sorted.
fn split_elements(body: &str) -> Vec<String> {
    let inner = body
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim();
    let mut v: Vec<String> = inner
        .split(',')
        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|e| !e.is_empty())
        .collect();
    v.sort();
    v
}

/// `type T hook H priority P; policy accept;` with P as a number.
fn hook(line: &str) -> String {
    let decl = line.split(';').next().unwrap_or(line);
    let (head, prio) = decl.split_once(" priority ").unwrap_or((decl, "0"));
    format!("{head} priority {}", priority(prio.trim()))
}

/// A priority as a number: nft prints the standard ones by name, with an offset
/// (`dstnat - 10`); names as nft defines them for family ip.
fn priority(text: &str) -> String {
    const NAMED: [(&str, i64); 6] = [
        ("raw", -300),
        ("mangle", -150),
        ("dstnat", -100),
        ("filter", 0),
        ("security", 50),
        ("srcnat", 100),
    ];
    let words: Vec<&str> = text.split_whitespace().collect();
    let base = |w: &str| {
        NAMED
            .iter()
            .find(|(n, _)| *n == w)
            .map(|(_, v)| *v)
            .or_else(|| w.parse().ok())
    };
    let value = match words.as_slice() {
        [w] => base(w),
        [w, "+", n] => base(w).zip(n.parse::<i64>().ok()).map(|(b, n)| b + n),
        [w, "-", n] => base(w).zip(n.parse::<i64>().ok()).map(|(b, n)| b - n),
        _ => None,
    };
    value.map_or_else(|| text.to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_and_orders_go_rules_and_elements_stay() {
        let kernel = "table ip kube-proxy {\n\tcomment \"rules for kube-proxy\"\n\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t\tcomment \"x\"\n\t\telements = { 10.96.0.2 . tcp . 80 : goto b,\n\t\t\t     10.96.0.1 . tcp . 80 : goto a }\n\t}\n\n\tchain nat-prerouting {\n\t\ttype nat hook prerouting priority dstnat - 10; policy accept;\n\t\tjump services\n\t}\n\tchain b {\n\t\tcomment \"helper\"\n\t\treject\n\t}\n}\n";
        assert_eq!(
            normalise(kernel),
            "chain b\n  rule reject\nchain nat-prerouting\n  type nat hook prerouting priority -110\n  rule jump services\nmap service-ips\n  element 10.96.0.1 . tcp . 80 : goto a\n  element 10.96.0.2 . tcp . 80 : goto b\n"
        );
    }
}

//! Rules and chains in the form `nft list` prints them back: nft compiles a rule into
//! kernel expressions and decompiles them on listing, so `mark set mark or 0x4000`
//! comes back as `meta mark set meta mark | 0x00004000`, a one-element anonymous set
//! `{ 10.96.0.0/12 }` as its element, a vmap's `a , b` as `a, b`, and 1.36's
//! `dnat ip addr . port to ...` as `dnat ip to ...`. The stand-in
//! answers `nft list table` in this form (the conformance tests hold it against the
//! kernel's; see [`crate::conformance`]). Covered: the expressions kube-proxy's rules
//! use; any other word is kept as written.

/// `text` (a rule as written after its chain name) as `nft list` prints it.
pub(crate) fn rule(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out: Vec<String> = Vec::new();
    // Inside a meta mark expression: operators are symbols, values 32-bit hex.
    let mut in_mark = false;
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        i += 1;
        let prev = out.last().map(String::as_str);
        match w {
            "mark" => {
                if !matches!(prev, Some("meta" | "ct")) {
                    out.push("meta".into());
                }
                out.push("mark".into());
                in_mark = true;
            }
            "or" | "and" | "xor" if in_mark => {
                out.push(
                    match w {
                        "or" => "|",
                        "and" => "&",
                        _ => "^",
                    }
                    .into(),
                );
            }
            // `dnat ip addr . port to`: nft prints the concatenated target as `ip to`.
            "addr"
                if prev == Some("ip")
                    && out.len() >= 2
                    && out[out.len() - 2] == "dnat"
                    && words[i..].starts_with(&[".", "port", "to"]) =>
            {
                i += 2;
            }
            "{" => {
                let end = words[i..]
                    .iter()
                    .position(|x| *x == "}")
                    .map_or(words.len(), |p| i + p);
                // `update @set { ip saddr }`: the key expression keeps its braces.
                if prev.is_some_and(|p| p.starts_with('@')) {
                    out.push(format!("{{ {} }}", words[i..end].join(" ")));
                } else {
                    out.push(anonymous_set(&words[i..end], prev));
                }
                i = (end + 1).min(words.len());
            }
            w if in_mark && matches!(prev, Some("==" | "!=" | "|" | "&" | "^")) => {
                out.push(mark_value(w));
            }
            w => {
                if matches!(w, "return" | "jump" | "goto" | "accept" | "drop" | "set") {
                    in_mark = w == "set" && in_mark;
                }
                out.push(w.into());
            }
        }
    }
    out.join(" ")
}

/// The inside of `{ ... }`: a one-element set (not a map's) is printed as its element,
/// others with `, ` between elements.
fn anonymous_set(words: &[&str], before: Option<&str>) -> String {
    let joined = words.join(" ");
    let elements: Vec<&str> = joined
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let map = matches!(before, Some("vmap" | "map")) || elements.iter().any(|e| e.contains(" : "));
    if elements.len() == 1 && !map {
        return elements[0].to_string();
    }
    if !map {
        if let Some(merged) = merged_intervals(&elements) {
            return format!("{{ {} }}", merged.join(", "));
        }
    }
    format!("{{ {} }}", elements.join(", "))
}

/// An anonymous set of IPv4 addresses and prefixes as nft lists it: an interval set,
/// whose overlapping and adjacent elements the kernel merges (`{ 100.64.0.0/24 ,
/// 100.64.1.0/24 }` comes back as `{ 100.64.0.0/23 }`, three adjacent /24s as
/// `{ 100.64.0.0-100.64.2.255 }`). None unless every element is an address or prefix.
fn merged_intervals(elements: &[&str]) -> Option<Vec<String>> {
    use std::net::Ipv4Addr;
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for e in elements {
        let (addr, len) = match e.split_once('/') {
            Some((a, l)) => (a, l.parse::<u32>().ok().filter(|l| *l <= 32)?),
            None => (*e, 32),
        };
        let start = u64::from(u32::from(addr.parse::<Ipv4Addr>().ok()?));
        let size = 1u64 << (32 - len);
        let start = start & !(size - 1);
        ranges.push((start, start + size - 1));
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1 + 1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let ip = |v: u64| Ipv4Addr::from(v as u32);
    Some(
        merged
            .into_iter()
            .map(|(a, b)| {
                let size = b - a + 1;
                if size == 1 {
                    ip(a).to_string()
                } else if size.is_power_of_two() && a % size == 0 {
                    format!("{}/{}", ip(a), 32 - size.trailing_zeros())
                } else {
                    format!("{}-{}", ip(a), ip(b))
                }
            })
            .collect(),
    )
}

/// A mark value as nft prints one: `0x` and eight hex digits.
fn mark_value(w: &str) -> String {
    let parsed = match w.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => w.parse::<u32>().ok(),
    };
    parsed.map_or_else(|| w.to_string(), |v| format!("0x{v:08x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_come_back_as_nft_lists_them() {
        assert_eq!(
            rule("mark set mark or 0x00004000"),
            "meta mark set meta mark | 0x00004000"
        );
        assert_eq!(
            rule("mark and 0x00004000 == 0 return"),
            "meta mark & 0x00004000 == 0x00000000 return"
        );
        assert_eq!(
            rule("mark set mark xor 0x00004000"),
            "meta mark set meta mark ^ 0x00004000"
        );
        assert_eq!(
            rule("ip daddr { 10.96.0.0/12 } drop comment \"Drop traffic\""),
            "ip daddr 10.96.0.0/12 drop comment \"Drop traffic\""
        );
        assert_eq!(
            rule("numgen random mod 2 vmap { 0 : goto a , 1 : goto b }"),
            "numgen random mod 2 vmap { 0 : goto a, 1 : goto b }"
        );
        assert_eq!(rule("ct state new jump x"), "ct state new jump x");
        // ClientIP affinity and the external chain, as nft 1.0.6 lists them.
        assert_eq!(
            rule("update @affinity-x/y { ip saddr }"),
            "update @affinity-x/y { ip saddr }"
        );
        assert_eq!(
            rule("fib saddr type local mark set mark or 0x00004000 comment \"masquerade local traffic\""),
            "fib saddr type local meta mark set meta mark | 0x00004000 comment \"masquerade local traffic\""
        );
        assert_eq!(
            rule("ip saddr != { 100.64.0.0/24 } drop"),
            "ip saddr != 100.64.0.0/24 drop"
        );
        // Source ranges: nft 1.0.6 merges adjacent prefixes of an anonymous set.
        for (written, listed) in [
            (
                "{ 100.64.0.0/24 , 100.64.2.0/24 }",
                "{ 100.64.0.0/24, 100.64.2.0/24 }",
            ),
            (
                "{ 100.64.0.0/24 , 100.64.1.0/24 , 100.64.2.0/24 }",
                "{ 100.64.0.0-100.64.2.255 }",
            ),
            (
                "{ 100.64.1.0/24 , 100.64.2.0/24 , 100.64.5.0/24 }",
                "{ 100.64.1.0-100.64.2.255, 100.64.5.0/24 }",
            ),
            (
                "{ 100.64.0.0/24 , 100.64.1.0/24 , 100.64.2.0/24 , 100.64.3.0/24 }",
                "{ 100.64.0.0/22 }",
            ),
            (
                "{ 100.64.0.0/24 , 198.19.0.1 }",
                "{ 100.64.0.0/24, 198.19.0.1 }",
            ),
        ] {
            assert_eq!(
                rule(&format!("ip saddr != {written} drop")),
                format!("ip saddr != {listed} drop")
            );
        }
        // 1.36's rules, as a v1.36.2 node lists them.
        assert_eq!(
            rule("meta l4proto tcp dnat ip addr . port to numgen random mod 2 map { 0 : 10.244.0.10 . 9898 , 1 : 10.244.0.8 . 9898 }"),
            "meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.244.0.10 . 9898, 1 : 10.244.0.8 . 9898 }"
        );
        assert_eq!(
            rule("mark and 0x00004000 != 0 mark set mark xor 0x00004000 masquerade fully-random"),
            "meta mark & 0x00004000 != 0x00000000 meta mark set meta mark ^ 0x00004000 masquerade fully-random"
        );
    }
}

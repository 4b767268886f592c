//! A rule's arguments in the form the kernel hands back: `iptables` parses a rule into
//! its binary form and `iptables-save` prints that form, not the text it was given. The
//! stand-ins keep rules in this form so their `iptables-save`, `-C` and `-D` answer as
//! the kernel's do (the conformance tests found the difference; see
//! [`crate::conformance`]). Covered: what kube-proxy's rules use (`-s -d -i -o -p`,
//! matches with their options, `-j`/`-g` with the MARK and statistic encodings);
//! anything else is kept as written.

/// The generic options in the order `iptables-save` prints them.
const GENERIC: [(&str, &str, &str); 5] = [
    ("-s", "--source", "-s"),
    ("-d", "--destination", "-d"),
    ("-i", "--in-interface", "-i"),
    ("-o", "--out-interface", "-o"),
    ("-p", "--protocol", "-p"),
];

/// Options of the tcp/udp match, which `-p tcp` loads without `-m tcp`.
const PORT_OPTIONS: [&str; 4] = ["--dport", "--sport", "--destination-port", "--source-port"];

/// One option with its value, negated or not.
#[derive(Debug, Clone)]
struct Opt {
    neg: bool,
    name: String,
    value: Option<String>,
}

impl Opt {
    fn push(&self, out: &mut Vec<String>) {
        if self.neg {
            out.push("!".into());
        }
        out.push(self.name.clone());
        out.extend(self.value.clone());
    }
}

/// Whether an option takes the next argument as its value.
fn takes_value(name: &str, next: Option<&String>) -> bool {
    const FLAGS: [&str; 4] = ["--random-fully", "--random", "--persistent", "--rcheck"];
    !FLAGS.contains(&name) && next.is_some_and(|n| n != "!" && !n.starts_with('-'))
}

/// `rule` (arguments after the chain name, unquoted) as the kernel prints it back.
pub(crate) fn canonical(rule: &[String]) -> Vec<String> {
    let mut generic: [Option<Opt>; 5] = Default::default();
    let mut matches: Vec<(String, Vec<Opt>)> = Vec::new();
    let mut target: Option<(String, String, Vec<Opt>)> = None;
    let mut neg = false;
    let mut i = 0;
    while i < rule.len() {
        let arg = &rule[i];
        i += 1;
        if arg == "!" {
            neg = true;
            continue;
        }
        if let Some(g) = GENERIC.iter().position(|(s, l, _)| arg == s || arg == l) {
            let mut value = rule.get(i).cloned().unwrap_or_default();
            i += 1;
            if g < 2 && !value.contains('/') {
                value.push_str("/32");
            }
            generic[g] = Some(Opt {
                neg,
                name: GENERIC[g].2.into(),
                value: Some(value),
            });
        } else if arg == "-m" || arg == "--match" {
            matches.push((rule.get(i).cloned().unwrap_or_default(), Vec::new()));
            i += 1;
        } else if arg == "-j" || arg == "-g" || arg == "--jump" || arg == "--goto" {
            let how = if arg.starts_with("-g") || arg == "--goto" {
                "-g"
            } else {
                "-j"
            };
            target = Some((
                how.into(),
                rule.get(i).cloned().unwrap_or_default(),
                Vec::new(),
            ));
            i += 1;
        } else {
            let value = takes_value(arg, rule.get(i)).then(|| rule[i].clone());
            i += usize::from(value.is_some());
            let opt = Opt {
                neg,
                name: arg.clone(),
                value,
            };
            place(opt, &generic, &mut matches, &mut target);
        }
        neg = false;
    }
    render(generic, matches, target)
}

/// Puts an extension option with its owner: the target's after `-j`, a port option
/// with the protocol's match (loading it as `-p` does), any other with the last match.
fn place(
    opt: Opt,
    generic: &[Option<Opt>; 5],
    matches: &mut Vec<(String, Vec<Opt>)>,
    target: &mut Option<(String, String, Vec<Opt>)>,
) {
    if let Some((_, _, opts)) = target.as_mut() {
        opts.push(opt);
        return;
    }
    if PORT_OPTIONS.contains(&opt.name.as_str()) {
        let proto = generic[4]
            .as_ref()
            .and_then(|p| p.value.clone())
            .unwrap_or_default();
        match matches.iter_mut().find(|(m, _)| *m == proto) {
            Some((_, opts)) => opts.push(opt),
            None => matches.push((proto, vec![opt])),
        }
        return;
    }
    match matches.last_mut() {
        Some((_, opts)) => opts.push(opt),
        None => matches.push((String::new(), vec![opt])),
    }
}

fn render(
    generic: [Option<Opt>; 5],
    matches: Vec<(String, Vec<Opt>)>,
    target: Option<(String, String, Vec<Opt>)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for g in generic.iter().flatten() {
        g.push(&mut out);
    }
    for (name, opts) in matches {
        if !name.is_empty() {
            out.extend(["-m".to_string(), name.clone()]);
        }
        let opts = match name.as_str() {
            "recent" => recent(opts),
            "ipvs" => ipvs(opts),
            _ => opts,
        };
        for o in opts {
            match_option(&name, o).push(&mut out);
        }
    }
    if let Some((how, name, mut opts)) = target {
        // REJECT's default reply, which the kernel keeps and prints.
        if name == "REJECT" && opts.is_empty() {
            opts.push(Opt {
                neg: false,
                name: "--reject-with".into(),
                value: Some("icmp-port-unreachable".into()),
            });
        }
        out.extend([how, name.clone()]);
        for o in opts {
            for t in target_option(&name, o) {
                t.push(&mut out);
            }
        }
    }
    out
}

/// A match option in the kernel's encoding: statistic's probability is kept as a
/// fraction of 2^31 and printed with 11 decimals; port names long-form are printed short.
fn match_option(name: &str, mut o: Opt) -> Opt {
    if name == "statistic" && o.name == "--probability" {
        if let Some(p) = o.value.as_deref().and_then(|v| v.parse::<f64>().ok()) {
            let fixed = (p * 2_147_483_648.0).round();
            o.value = Some(format!("{:.11}", fixed / 2_147_483_648.0));
        }
    }
    // The mark match keeps value and mask as numbers and prints them without padding.
    if name == "mark" && o.name == "--mark" {
        o.value = o.value.as_deref().map(hex_pair);
    }
    match o.name.as_str() {
        "--destination-port" => o.name = "--dport".into(),
        "--source-port" => o.name = "--sport".into(),
        _ => {}
    }
    o
}

/// The ipvs match's options as libxt_ipvs's save prints them: `--vproto` as its
/// number, then `--vaddr` (a /32 without its mask), `--vport`, the rest as given.
fn ipvs(opts: Vec<Opt>) -> Vec<Opt> {
    const ORDER: [&str; 3] = ["--vproto", "--vaddr", "--vport"];
    let rank = |o: &Opt| {
        ORDER
            .iter()
            .position(|n| *n == o.name)
            .unwrap_or(ORDER.len())
    };
    let mut opts: Vec<Opt> = opts
        .into_iter()
        .map(|mut o| {
            if o.name == "--vproto" {
                o.value = o.value.map(|v| match v.as_str() {
                    "tcp" => "6".into(),
                    "udp" => "17".into(),
                    "sctp" => "132".into(),
                    _ => v,
                });
            }
            if o.name == "--vaddr" {
                o.value = o.value.map(|v| v.trim_end_matches("/32").to_string());
            }
            o
        })
        .collect();
    opts.sort_by_key(rank);
    opts
}

/// The recent match's options as the kernel prints them (libxt_recent's save): the
/// command, `--seconds`, `--reap`, `--hitcount`, `--rttl`, then `--name`, `--mask`
/// and the side, the last two at their defaults (`255.255.255.255`, `--rsource`)
/// when not given.
fn recent(opts: Vec<Opt>) -> Vec<Opt> {
    const ORDER: [&str; 10] = [
        "--set",
        "--rcheck",
        "--update",
        "--remove",
        "--seconds",
        "--reap",
        "--hitcount",
        "--rttl",
        "--name",
        "--mask",
    ];
    let mut out: Vec<Opt> = Vec::new();
    for name in ORDER {
        out.extend(opts.iter().filter(|o| o.name == name).cloned());
    }
    let flag = |name: &str, value: Option<&str>| Opt {
        neg: false,
        name: name.into(),
        value: value.map(str::to_string),
    };
    if !opts.iter().any(|o| o.name == "--name") {
        out.push(flag("--name", Some("DEFAULT")));
    }
    if !opts.iter().any(|o| o.name == "--mask") {
        out.push(flag("--mask", Some("255.255.255.255")));
    }
    match opts
        .iter()
        .find(|o| o.name == "--rsource" || o.name == "--rdest")
    {
        Some(side) => out.push(side.clone()),
        None => out.push(flag("--rsource", None)),
    }
    out
}

/// `0x00004000/0x00004000` as the kernel prints it, `0x4000/0x4000`; other text as is.
fn hex_pair(v: &str) -> String {
    v.split('/')
        .map(
            |h| match h.strip_prefix("0x").map(|d| u32::from_str_radix(d, 16)) {
                Some(Ok(n)) => format!("{n:#x}"),
                _ => h.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// A target option in the kernel's encoding: MARK keeps a value and a mask, so
/// `--or-mark M` comes back as `--set-xmark M/M` and `--xor-mark M` as `--set-xmark M/0x0`.
fn target_option(name: &str, o: Opt) -> Vec<Opt> {
    if name != "MARK" {
        return vec![o];
    }
    let mark = hex_pair(o.value.as_deref().unwrap_or_default());
    let xmark = match o.name.as_str() {
        "--or-mark" => format!("{mark}/{mark}"),
        "--xor-mark" => format!("{mark}/0x0"),
        "--set-mark" if !mark.contains('/') => format!("{mark}/0xffffffff"),
        _ => return vec![o],
    };
    vec![Opt {
        neg: o.neg,
        name: "--set-xmark".into(),
        value: Some(xmark),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(rule: &str) -> String {
        let args: Vec<String> = rule.split(' ').map(str::to_string).collect();
        canonical(&args).join(" ")
    }

    #[test]
    fn rules_come_back_as_iptables_save_prints_them() {
        // Written by kube-proxy (and kpbench), printed back by the kernel via iptables-save.
        assert_eq!(
            c("-m comment --comment x -m tcp -p tcp -d 10.96.0.7 --dport 80 ! -s 10.128.0.0/10 -j KUBE-MARK-MASQ"),
            "! -s 10.128.0.0/10 -d 10.96.0.7/32 -p tcp -m comment --comment x -m tcp --dport 80 -j KUBE-MARK-MASQ"
        );
        assert_eq!(
            c("-m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-A"),
            "-m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-A"
        );
        assert_eq!(
            c("-j MARK --or-mark 0x4000"),
            "-j MARK --set-xmark 0x4000/0x4000"
        );
        assert_eq!(
            c("-j MARK --xor-mark 0x00004000"),
            "-j MARK --set-xmark 0x4000/0x0"
        );
        assert_eq!(
            c("-m set --match-set KUBE-IPVS-IPS dst -j REJECT"),
            "-m set --match-set KUBE-IPVS-IPS dst -j REJECT --reject-with icmp-port-unreachable"
        );
        assert_eq!(
            c("-m mark ! --mark 0x00004000/0x00004000 -j REJECT"),
            "-m mark ! --mark 0x4000/0x4000 -j REJECT --reject-with icmp-port-unreachable"
        );
        assert_eq!(
            c("-p tcp --dport 80 -j DNAT --to-destination 10.128.0.1:8080"),
            "-p tcp -m tcp --dport 80 -j DNAT --to-destination 10.128.0.1:8080"
        );
        // kube-proxy's affinity rules; iptables-save as the kernel test read them back.
        assert_eq!(
            c("-m recent --name KUBE-SEP-A --rcheck --seconds 600 --reap -j KUBE-SEP-A"),
            "-m recent --rcheck --seconds 600 --reap --name KUBE-SEP-A --mask 255.255.255.255 --rsource -j KUBE-SEP-A"
        );
        assert_eq!(
            c("-m recent --name KUBE-SEP-A --set -m tcp -p tcp -j DNAT --to-destination 10.128.0.1:8080"),
            "-p tcp -m recent --set --name KUBE-SEP-A --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.128.0.1:8080"
        );
        assert_eq!(
            c("-m addrtype ! --dst-type LOCAL -j MASQUERADE --random-fully"),
            "-m addrtype ! --dst-type LOCAL -j MASQUERADE --random-fully"
        );
    }
}

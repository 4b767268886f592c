//! Programming kube-proxy's nftables transaction into a namespace, as knftables does:
//! the whole transaction on stdin of one `nft -f -`; reads with `nft --json list`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    expected_elements, expected_rules, FloorController, KubeProxyController, NftStandIn,
    NodePortAddresses,
};
use crate::floor::backend::{Backend, Objects};
use crate::floor::deadline::Deadline;
use crate::floor::error::ApplyError;
use crate::floor::exec::Tool;
use crate::floor::model::ServiceSet;
use crate::floor::netns::Netns;
use crate::floor::prereq::{KernelFeature, Prerequisites, ToolNeed};
use crate::floor::spec::Feature;
use crate::floor::sync::standin::StandIn;
use crate::floor::sync::{Controller, Executor, KubeProxyVersion, Profile};
use crate::mode::{Mode, ModeSpec};

/// How kube-proxy's table is listed, for people and for the read-back.
const LIST: &str = "nft list table ip kube-proxy";
const LIST_JSON: &str = "nft --json list table ip kube-proxy";

/// kube-proxy's nftables mode.
#[derive(Debug, Clone, Default)]
pub struct NftablesBackend {
    /// kube-proxy's `--nodeport-addresses`: by default `primary` with the node address
    /// kpbench's topology gives the node ([`super::DEFAULT_NODE_IP`]).
    pub node_ports: NodePortAddresses,
    /// The kube-proxy release whose objects the floor programs and `verify` expects
    /// (the two releases' rules differ; by default the newest).
    pub release: KubeProxyVersion,
}

impl NftablesBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// The same backend with another `--nodeport-addresses` (e.g. another node IP).
    pub fn with_node_ports(self, node_ports: NodePortAddresses) -> Self {
        NftablesBackend { node_ports, ..self }
    }

    /// The same backend for the objects of kube-proxy `release`.
    pub fn for_release(self, release: KubeProxyVersion) -> Self {
        NftablesBackend { release, ..self }
    }

    /// How many rules and named set and map elements a full sync of `set` leaves.
    pub fn expected_objects(&self, set: &ServiceSet) -> usize {
        expected_rules(set, self.release)
            + expected_elements(set, self.release)
            + self.node_ports.ips().len()
    }
}

/// `nft --json list table ip kube-proxy` in `ns`, parsed.
fn list_json(ns: &Netns, deadline: Deadline) -> Result<Value, ApplyError> {
    let out = Tool::new("nft", &["--json", "list", "table", "ip", "kube-proxy"])
        .netns(ns)
        .deadline(deadline)
        .run_ok()?;
    serde_json::from_str(&out.stdout).map_err(|source| ApplyError::Unparsable {
        command: LIST_JSON,
        ns: ns.name.clone(),
        source,
    })
}

fn objects(listing: &Value) -> impl Iterator<Item = (&str, &serde_json::Map<String, Value>)> {
    listing["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.as_object())
        .filter_map(|o| {
            let (kind, body) = o.iter().next()?;
            Some((kind.as_str(), body.as_object()?))
        })
}

/// Counts (rules, named set and map elements) in an `nft --json list` output. The
/// affinity sets' elements are not counted: traffic fills them (`update @affinity-..`),
/// not a sync.
pub fn count_objects(listing: &Value) -> (usize, usize) {
    let mut rules = 0;
    let mut elements = 0;
    for (kind, body) in objects(listing) {
        let dynamic = body
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.starts_with("affinity-"));
        match kind {
            "rule" => rules += 1,
            "set" | "map" if !dynamic => {
                elements += body
                    .get("elem")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            }
            _ => {}
        }
    }
    (rules, elements)
}

/// The table in `ns` in a canonical form that does not depend on the history that
/// built it: handles dropped, chains and sets keyed by name, each chain with its rules
/// in order, set and map elements sorted. Two namespaces hold the same ruleset exactly
/// when these strings are equal.
pub fn normalized_listing(ns: &Netns, deadline: Deadline) -> Result<String, ApplyError> {
    let listing = list_json(ns, deadline)?;
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    let mut rules: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (kind, body) in objects(&listing) {
        let mut body = body.clone();
        body.remove("handle");
        let name = body
            .get("name")
            .or_else(|| body.get("chain"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match kind {
            "metainfo" => {}
            "rule" => rules.entry(name).or_default().push(Value::Object(body)),
            _ => {
                if let Some(Value::Array(elems)) = body.get_mut("elem") {
                    elems.sort_by_cached_key(|e| e.to_string());
                }
                out.insert(format!("{kind} {name}"), Value::Object(body));
            }
        }
    }
    for (chain, list) in rules {
        out.insert(format!("rules of {chain}"), Value::Array(list));
    }
    let mut text = String::new();
    for (k, v) in out {
        text.push_str(&k);
        text.push_str(": ");
        text.push_str(&v.to_string());
        text.push('\n');
    }
    Ok(text)
}

/// The features the nftables renderer writes as kube-proxy 1.35 and 1.36 do
/// (pkg/proxy/nftables/proxier.go `syncProxyRules`; see `nftables/service.rs`):
/// several ports, UDP, NodePort and LoadBalancer services (`service-nodeports`, the
/// `external-` chains, ingress IPs in `service-ips`), ClientIP affinity (`affinity-`
/// sets with their timeout), both Local traffic policies (`local-` chains,
/// `no-endpoint-services` / `no-endpoint-nodeports` `drop` elements), external IPs and
/// source ranges, endpoint conditions (ready first, serving terminating ones as the
/// fallback).
///
/// `loadBalancerSourceRanges` is the `firewall-` chain (`ip saddr != { ranges } drop`)
/// and a `firewall-ips` element per ingress IP. kube-proxy also allows the ingress IPs
/// themselves when a range holds the node IP (`allowFromNode`); kpbench's ranges
/// (100.64.0.0/10, `floor::shape`) never hold its node IP (10.255.0.1), so that branch
/// is not written.
///
/// Not replayed for UDP: kube-proxy's `conntrack.CleanStaleEntries` after each
/// successful transaction (pkg/proxy/conntrack: it lists the conntrack table over
/// netlink and deletes the UDP flows to stale service IPs, node ports and endpoints;
/// kpbench has no conntrack netlink client). On a case's syncs no UDP flow is in
/// flight when a service changes, so it would delete nothing; its listing cost is not
/// in the kube-proxy profile's sync time.
pub const RENDERS: &[Feature] = &[
    Feature::NodePort,
    Feature::LoadBalancer,
    Feature::Udp,
    Feature::SeveralPorts,
    Feature::Affinity,
    Feature::ExternalPolicyLocal,
    Feature::InternalPolicyLocal,
    Feature::SourceRanges,
    Feature::ExternalIps,
    Feature::EndpointConditions,
];

impl Backend for NftablesBackend {
    fn renders(&self) -> &'static [Feature] {
        RENDERS
    }

    fn controller(&self, profile: Profile) -> Box<dyn Controller> {
        match profile {
            Profile::KubeProxy(version) => {
                Box::new(KubeProxyController::new(version, self.node_ports))
            }
            Profile::Floor => Box::new(FloorController::new(self.node_ports, self.release)),
        }
    }

    fn standins(&self) -> Vec<Box<dyn StandIn>> {
        vec![Box::new(NftStandIn::new())]
    }

    /// `nft list table ip kube-proxy`, normalised.
    fn readback(&self, io: &mut dyn Executor) -> Result<String, ApplyError> {
        super::readback::table(io)
    }

    fn spec(&self) -> ModeSpec {
        ModeSpec::new(Mode::Nftables)
    }

    fn prerequisites(&self) -> Prerequisites {
        Prerequisites {
            tools: vec![ToolNeed::new("nft", "nftables")],
            kernel: vec![KernelFeature::NfTables],
        }
    }

    fn inspect_command(&self) -> &'static str {
        LIST
    }

    fn verify(
        &self,
        ns: &Netns,
        expected: &ServiceSet,
        deadline: Deadline,
    ) -> Result<Objects, ApplyError> {
        let (rules, elements) = count_objects(&list_json(ns, deadline)?);
        Objects::check(
            "nftables rules and map elements",
            rules + elements,
            self.expected_objects(expected),
        )
    }
}

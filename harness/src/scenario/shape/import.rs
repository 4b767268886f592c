//! `kpbench shape import`: what `kubectl get services,endpointslices -A -o json` prints
//! (one v1 `List`, or several concatenated) turned into an anonymised [`Shape`]: the
//! services kube-proxy programs grouped by structure, their endpoints counted by
//! condition. Names, addresses, labels and port numbers are read only to match slices
//! to services and never written.

use std::collections::{BTreeMap, BTreeSet};

use dataplane::floor::shape::{EndpointCounts, Group, Shape, Skipped, FORMAT};
use dataplane::floor::spec::{Protocol, ServiceType, TrafficPolicy};
use serde_json::Value;

use super::ShapeError;

/// The command that prints what this reads, for hints.
pub const KUBECTL: &str = "kubectl get services,endpointslices -A -o json";

/// kube-proxy's default ClientIP affinity timeout (`v1.DefaultClientIPServiceAffinitySeconds`).
const DEFAULT_AFFINITY_S: u32 = 10800;

/// One service as read, before its endpoints are known.
struct Read {
    group: Group,
    /// The node names of its endpoints, in the order they are counted.
    nodes: Vec<Option<String>>,
}

/// The shape of the dump `text`. `node` names the node whose endpoints count as local
/// (None: the node with the most endpoints).
pub fn import(text: &str, node: Option<&str>) -> Result<Shape, ShapeError> {
    let items = items(text)?;
    let mut services: BTreeMap<(String, String), Read> = BTreeMap::new();
    let mut skipped = Skipped::default();
    let mut skipped_keys = BTreeSet::new();
    let mut slices = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let kind = item.get("kind").and_then(Value::as_str).unwrap_or("");
        let id = object_id(i, kind, item);
        match kind {
            "Service" => {
                let key = namespaced(item, &id)?;
                match service(item, &id)? {
                    Some(group) => {
                        services.insert(key, Read { group, nodes: Vec::new() });
                    }
                    None if spec_str(item, "type") == Some("ExternalName") => {
                        skipped.external_name += 1;
                        skipped_keys.insert(key);
                    }
                    None => {
                        skipped.headless += 1;
                        skipped_keys.insert(key);
                    }
                }
            }
            "EndpointSlice" => slices.push((id, item)),
            other => {
                return Err(ShapeError::Input(format!(
                    "{id}: kind {other:?} is neither Service nor EndpointSlice; dump only those, `{KUBECTL}`"
                )))
            }
        }
    }
    for (id, slice) in slices {
        add_slice(&mut services, &skipped_keys, slice, &id)?;
    }
    if services.is_empty() {
        return Err(ShapeError::Input(format!(
            "the dump has no Service kube-proxy programs; dump a cluster's services with `{KUBECTL}`"
        )));
    }
    let local = node.map(str::to_string).or_else(|| busiest_node(&services));
    let mut groups: BTreeMap<Group, u64> = BTreeMap::new();
    for (_, mut read) in services {
        read.group.endpoints.local = read
            .nodes
            .iter()
            .filter(|n| n.is_some() && n.as_deref() == local.as_deref())
            .count() as u32;
        *groups.entry(read.group.key()).or_insert(0) += 1;
    }
    let mut groups: Vec<Group> = groups
        .into_iter()
        .map(|(g, count)| Group { count, ..g })
        .collect();
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.cmp(b)));
    Ok(Shape {
        format: FORMAT.into(),
        source: "kubectl".into(),
        skipped,
        groups,
    })
}

/// Every object of the dump: the items of each v1 List in it, in order.
fn items(text: &str) -> Result<Vec<Value>, ShapeError> {
    let mut out = Vec::new();
    for (n, doc) in serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .enumerate()
    {
        let doc = doc.map_err(|e| {
            ShapeError::Input(format!(
                "not JSON ({e}); give what `{KUBECTL}` prints, unchanged"
            ))
        })?;
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind != "List" {
            return Err(ShapeError::Input(format!(
                "document {}: kind {kind:?} is not a v1 List; give what `{KUBECTL}` prints (`-o json`, not `-o yaml` or one object)",
                n + 1
            )));
        }
        let Some(list) = doc.get("items").and_then(Value::as_array) else {
            return Err(ShapeError::Input(format!(
                "document {}: the List has no `items` array; give what `{KUBECTL}` prints",
                n + 1
            )));
        };
        out.extend(list.iter().cloned());
    }
    Ok(out)
}

/// `items[i] (Kind ns/name)`, for messages.
fn object_id(i: usize, kind: &str, item: &Value) -> String {
    let meta = |k: &str| {
        item.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    format!("items[{i}] ({kind} {}/{})", meta("namespace"), meta("name"))
}

fn namespaced(item: &Value, id: &str) -> Result<(String, String), ShapeError> {
    let get = |k: &str| {
        item.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                ShapeError::Input(format!(
                    "{id}: no metadata.{k}; dump with `-A` so every object carries its namespace and name"
                ))
            })
    };
    Ok((get("namespace")?, get("name")?))
}

fn spec_str<'a>(item: &'a Value, field: &str) -> Option<&'a str> {
    item.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_str)
}

fn count_of(item: &Value, pointer: &str) -> u32 {
    item.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(0, |a| a.len() as u32)
}

/// A service's structure (no endpoints yet); None for the headless and ExternalName
/// services kube-proxy skips.
fn service(item: &Value, id: &str) -> Result<Option<Group>, ShapeError> {
    let bad = |field: &str, value: &str, fix: &str| {
        ShapeError::Input(format!("{id}: spec.{field} {value:?}: {fix}"))
    };
    let kind = match spec_str(item, "type").unwrap_or("ClusterIP") {
        "ClusterIP" => ServiceType::ClusterIP,
        "NodePort" => ServiceType::NodePort,
        "LoadBalancer" => ServiceType::LoadBalancer,
        "ExternalName" => return Ok(None),
        other => {
            return Err(bad(
                "type",
                other,
                "use ClusterIP, NodePort, LoadBalancer or ExternalName",
            ))
        }
    };
    if matches!(spec_str(item, "clusterIP"), None | Some("None") | Some("")) {
        return Ok(None);
    }
    let mut ports = Vec::new();
    for p in item
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        ports.push(
            match p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                other => {
                    return Err(bad(
                        "ports[].protocol",
                        other,
                        "kpbench models TCP and UDP ports; remove this service from the dump",
                    ))
                }
            },
        );
    }
    if ports.is_empty() {
        return Err(ShapeError::Input(format!(
            "{id}: spec.ports is empty; a service with a ClusterIP has a port, so the dump is cut: dump it again with `{KUBECTL}`"
        )));
    }
    let policy = |field: &str| match spec_str(item, field) {
        None | Some("Cluster") | Some("Global") => Ok(TrafficPolicy::Cluster),
        Some("Local") => Ok(TrafficPolicy::Local),
        Some(other) => Err(bad(field, other, "use Cluster or Local")),
    };
    let affinity_timeout_s = match spec_str(item, "sessionAffinity") {
        None | Some("None") => None,
        Some("ClientIP") => Some(
            item.pointer("/spec/sessionAffinityConfig/clientIP/timeoutSeconds")
                .and_then(Value::as_u64)
                .map_or(DEFAULT_AFFINITY_S, |t| t as u32),
        ),
        Some(other) => return Err(bad("sessionAffinity", other, "use None or ClientIP")),
    };
    let lb = kind == ServiceType::LoadBalancer;
    Ok(Some(Group {
        count: 1,
        kind,
        ports,
        affinity_timeout_s,
        external_traffic_policy: policy("externalTrafficPolicy")?,
        internal_traffic_policy: policy("internalTrafficPolicy")?,
        source_ranges: if lb {
            count_of(item, "/spec/loadBalancerSourceRanges")
        } else {
            0
        },
        external_ips: count_of(item, "/spec/externalIPs"),
        ingress_ips: if lb {
            item.pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .map_or(0, |a| {
                    a.iter().filter(|i| i.get("ip").is_some()).count() as u32
                })
        } else {
            0
        },
        endpoints: EndpointCounts::default(),
    }))
}

/// Counts `slice`'s endpoints into its service's.
fn add_slice(
    services: &mut BTreeMap<(String, String), Read>,
    skipped: &BTreeSet<(String, String)>,
    slice: &Value,
    id: &str,
) -> Result<(), ShapeError> {
    let (ns, _) = namespaced(slice, id)?;
    if slice.get("addressType").and_then(Value::as_str) != Some("IPv4") {
        // kube-proxy's IPv4 proxier reads only IPv4 slices.
        return Ok(());
    }
    let Some(svc) = slice
        .pointer("/metadata/labels/kubernetes.io~1service-name")
        .and_then(Value::as_str)
    else {
        return Err(ShapeError::Input(format!(
            "{id}: no label kubernetes.io/service-name, so its service is unknown; dump the slices the EndpointSlice controller writes, unedited"
        )));
    };
    let key = (ns.clone(), svc.to_string());
    let Some(read) = services.get_mut(&key) else {
        if skipped.contains(&key) {
            // A headless service's slice: kube-proxy skips it with its service.
            return Ok(());
        }
        return Err(ShapeError::Input(format!(
            "{id}: its service {ns}/{svc} is not in the dump; dump services and endpointslices together, `{KUBECTL}`"
        )));
    };
    for ep in slice
        .get("endpoints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let cond = |k: &str| {
            ep.pointer(&format!("/conditions/{k}"))
                .and_then(Value::as_bool)
        };
        let ready = cond("ready").unwrap_or(true);
        let terminating = cond("terminating").unwrap_or(false);
        let serving = cond("serving").unwrap_or(ready);
        let e = &mut read.group.endpoints;
        match (ready, serving, terminating) {
            (true, _, false) => e.ready += 1,
            (_, true, true) => e.serving_terminating += 1,
            (_, false, true) => e.terminating += 1,
            _ => e.not_ready += 1,
        }
        read.nodes.push(
            ep.get("nodeName")
                .and_then(Value::as_str)
                .map(str::to_string),
        );
    }
    Ok(())
}

/// The node with the most endpoints (ties: the first by name); None when no endpoint
/// names one.
fn busiest_node(services: &BTreeMap<(String, String), Read>) -> Option<String> {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for n in services.values().flat_map(|r| r.nodes.iter().flatten()) {
        *by.entry(n).or_insert(0) += 1;
    }
    let most = *by.values().max()?;
    by.into_iter()
        .find(|(_, c)| *c == most)
        .map(|(n, _)| n.to_string())
}

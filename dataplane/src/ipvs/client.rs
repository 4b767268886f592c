//! The IPVS client: resolves the `IPVS` generic-netlink family and programs and reads
//! virtual services and real servers, one request each (as `ipvsadm -A/-a/-D/-d`) or
//! many per `send()`.

use std::io;
use std::time::Duration;

use netlink_packet_core::{NetlinkDeserializable, NetlinkHeader};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlHeader, GenlMessage};
use netlink_packet_utils::ParseableParametrized;

use super::attrs::{
    CmdAttr, IpvsMessage, AF_INET, AF_INET6, IPVS_CMD_GET_DEST, IPVS_CMD_GET_SERVICE,
    IPVS_GENL_NAME,
};
use super::message::{host_port, Op, RealServer, VirtualService};
use super::nl::{Batch, NlSocket};
use crate::floor::error::ApplyError;
use crate::floor::netns::{Netns, NetnsError};
use crate::floor::prereq::{KernelFeature, Unavailable};

/// Errors talking to IPVS.
#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    #[error(
        "the kernel has no IPVS (generic netlink family \"IPVS\" not found): load the ip_vs module, or run the ipvs mode in the kernel lab (`kpbench lab`)"
    )]
    NoIpvs,
    #[error("IPVS netlink socket: {0}")]
    Socket(#[source] io::Error),
    /// The kernel refused a request: `op` names its step and what it asked.
    #[error("{op}: {}", crate::floor::errno::Named(source))]
    Kernel {
        op: String,
        #[source]
        source: io::Error,
    },
    #[error("IPVS reply could not be decoded: {0}")]
    Decode(String),
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

impl IpvsError {
    /// The kernel's refusal of `op` with `errno`, naming its step and what it asked:
    /// "IPVS NEW_SERVICE (new service -t 10.96.0.1:80): EEXIST: File exists (os error 17)".
    pub fn refused(op: &Op<'_>, source: io::Error) -> IpvsError {
        IpvsError::Kernel {
            op: format!("{} ({})", op.step(), op.describe()),
            source,
        }
    }
}

/// What a batch did: how many requests were sent and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    pub requests: usize,
    pub bytes: usize,
}

/// A generic-netlink socket speaking the `IPVS` family in one network namespace.
pub struct IpvsClient {
    nl: NlSocket,
    family: u16,
}

impl IpvsClient {
    /// Opens a client in the calling thread's network namespace.
    pub fn open() -> Result<Self, IpvsError> {
        let mut nl =
            NlSocket::open(netlink_sys::protocols::NETLINK_GENERIC).map_err(IpvsError::Socket)?;
        let family = resolve_family(&mut nl, IPVS_GENL_NAME)?;
        Ok(IpvsClient { nl, family })
    }

    /// Opens a client whose socket lives in `ns`: it is created on a thread that has
    /// entered the namespace (a netlink socket stays in the namespace it was created in).
    pub fn open_in(ns: &Netns) -> Result<Self, IpvsError> {
        ns.run(IpvsClient::open)?
    }

    /// The family id the kernel assigned to `IPVS`.
    pub fn family(&self) -> u16 {
        self.family
    }

    /// Fails receives that wait longer than `t`.
    pub fn set_timeout(&self, t: Duration) -> Result<(), IpvsError> {
        self.nl.set_timeout(t).map_err(IpvsError::Socket)
    }

    /// Serializes `ops` as one batch of requests with this client's family id.
    pub fn encode(&mut self, ops: &[Op<'_>]) -> Batch {
        let family = self.family;
        self.nl
            .batch(ops.iter().map(|op| genl(op.message(), family)), 0)
    }

    /// Sends `ops` many per `send()` and returns each one's outcome, in order
    /// (`Err(errno)` where the kernel refused it).
    pub fn execute(
        &mut self,
        ops: &[Op<'_>],
    ) -> Result<(Vec<Result<(), i32>>, BatchStats), IpvsError> {
        let batch = self.encode(ops);
        let codes = self.nl.execute(&batch).map_err(IpvsError::Socket)?;
        let stats = BatchStats {
            requests: batch.len(),
            bytes: batch.bytes(),
        };
        let out = codes
            .into_iter()
            .map(|c| if c == 0 { Ok(()) } else { Err(c) })
            .collect();
        Ok((out, stats))
    }

    /// Like [`IpvsClient::execute`], but fails on the first refused request, except
    /// errnos `tolerate` accepts (e.g. EEXIST when ensuring).
    pub fn execute_ok(
        &mut self,
        ops: &[Op<'_>],
        tolerate: impl Fn(&Op<'_>, i32) -> bool,
    ) -> Result<BatchStats, IpvsError> {
        let (res, stats) = self.execute(ops)?;
        for (op, r) in ops.iter().zip(res) {
            if let Err(errno) = r {
                if !tolerate(op, errno) {
                    return Err(IpvsError::refused(op, io::Error::from_raw_os_error(errno)));
                }
            }
        }
        Ok(stats)
    }

    fn one(&mut self, op: Op<'_>) -> Result<(), IpvsError> {
        self.execute_ok(&[op], |_, _| false).map(|_| ())
    }

    /// `ipvsadm -A`.
    pub fn new_service(&mut self, s: &VirtualService) -> Result<(), IpvsError> {
        self.one(Op::NewService(s))
    }

    /// `ipvsadm -E`.
    pub fn set_service(&mut self, s: &VirtualService) -> Result<(), IpvsError> {
        self.one(Op::SetService(s))
    }

    /// `ipvsadm -D`.
    pub fn del_service(&mut self, s: &VirtualService) -> Result<(), IpvsError> {
        self.one(Op::DelService(s))
    }

    /// `ipvsadm -a`.
    pub fn new_dest(&mut self, s: &VirtualService, d: RealServer) -> Result<(), IpvsError> {
        self.one(Op::NewDest(s, d))
    }

    /// `ipvsadm -e`.
    pub fn set_dest(&mut self, s: &VirtualService, d: RealServer) -> Result<(), IpvsError> {
        self.one(Op::SetDest(s, d))
    }

    /// `ipvsadm -d`.
    pub fn del_dest(&mut self, s: &VirtualService, d: RealServer) -> Result<(), IpvsError> {
        self.one(Op::DelDest(s, d))
    }

    /// `ipvsadm -C`: removes every virtual service.
    pub fn flush(&mut self) -> Result<(), IpvsError> {
        self.one(Op::Flush)
    }

    /// Every virtual service (`ipvsadm -L -n`, services only): one GET_SERVICE dump.
    pub fn services(&mut self) -> Result<Vec<VirtualService>, IpvsError> {
        // An empty SERVICE attribute, as moby sends with its dump.
        let msg = IpvsMessage {
            cmd: IPVS_CMD_GET_SERVICE,
            attrs: vec![CmdAttr::Service(Vec::new())],
        };
        let parts = self
            .nl
            .request(genl(msg, self.family), true)
            .map_err(|source| IpvsError::Kernel {
                op: "IPVS GET_SERVICE dump".into(),
                source,
            })?;
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            for a in parse(&p)?.attrs {
                if let CmdAttr::Service(attrs) = a {
                    out.push(VirtualService::from_attrs(&attrs).map_err(decode)?);
                }
            }
        }
        Ok(out)
    }

    /// One virtual service by its key (kube-proxy's `GetVirtualServer`): a GET_SERVICE
    /// request without a dump; None when the kernel has no such service.
    pub fn service(&mut self, s: &VirtualService) -> Result<Option<VirtualService>, IpvsError> {
        let msg = IpvsMessage {
            cmd: IPVS_CMD_GET_SERVICE,
            attrs: vec![CmdAttr::Service(s.key_attrs())],
        };
        let parts = match self.nl.request(genl(msg, self.family), false) {
            Ok(parts) => parts,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ESRCH) | Some(libc::ENOENT)) => {
                return Ok(None)
            }
            Err(source) => {
                return Err(IpvsError::Kernel {
                    op: format!("IPVS GET_SERVICE {}", host_port(s.addr, s.port)),
                    source,
                })
            }
        };
        for p in parts {
            for a in parse(&p)?.attrs {
                if let CmdAttr::Service(attrs) = a {
                    return Ok(Some(VirtualService::from_attrs(&attrs).map_err(decode)?));
                }
            }
        }
        Ok(None)
    }

    /// The real servers of `s`: one GET_DEST dump.
    pub fn destinations(&mut self, s: &VirtualService) -> Result<Vec<RealServer>, IpvsError> {
        let msg = IpvsMessage {
            cmd: IPVS_CMD_GET_DEST,
            attrs: vec![CmdAttr::Service(s.key_attrs())],
        };
        let parts = self
            .nl
            .request(genl(msg, self.family), true)
            .map_err(|source| IpvsError::Kernel {
                op: format!("IPVS GET_DEST dump {}", host_port(s.addr, s.port)),
                source,
            })?;
        let af = if s.addr.is_ipv4() { AF_INET } else { AF_INET6 };
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            for a in parse(&p)?.attrs {
                if let CmdAttr::Dest(attrs) = a {
                    out.push(RealServer::from_attrs(&attrs, af).map_err(decode)?);
                }
            }
        }
        Ok(out)
    }
}

fn decode(e: netlink_packet_utils::DecodeError) -> IpvsError {
    IpvsError::Decode(e.to_string())
}

/// Wraps an IPVS payload in a generic-netlink message addressed to `family`.
pub fn genl(msg: IpvsMessage, family: u16) -> GenlMessage<IpvsMessage> {
    let mut m = GenlMessage::from_payload(msg);
    m.set_resolved_family_id(family);
    m
}

/// Parses the payload (generic-netlink header + attributes) of an IPVS reply.
fn parse(payload: &[u8]) -> Result<IpvsMessage, IpvsError> {
    if payload.len() < 4 {
        return Err(IpvsError::Decode("short generic netlink header".into()));
    }
    let header = GenlHeader {
        cmd: payload[0],
        version: payload[1],
    };
    IpvsMessage::parse_with_param(&payload[4..], header).map_err(decode)
}

/// `CTRL_CMD_GETFAMILY` for `name`: the family id the kernel assigned.
pub fn resolve_family(nl: &mut NlSocket, name: &str) -> Result<u16, IpvsError> {
    let req = GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(name.to_string())],
    });
    let parts = match nl.request(req, false) {
        Ok(p) => p,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(IpvsError::NoIpvs),
        Err(source) => {
            return Err(IpvsError::Kernel {
                op: format!("generic netlink GETFAMILY {name}"),
                source,
            })
        }
    };
    for p in parts {
        let msg = GenlMessage::<GenlCtrl>::deserialize(&NetlinkHeader::default(), &p)
            .map_err(|e| IpvsError::Decode(e.to_string()))?;
        for nla in msg.payload.nlas {
            if let GenlCtrlAttrs::FamilyId(id) = nla {
                return Ok(id);
            }
        }
    }
    Err(IpvsError::NoIpvs)
}

impl From<IpvsError> for ApplyError {
    /// A kernel without IPVS is a missing feature (the case is skipped).
    fn from(e: IpvsError) -> Self {
        match e {
            IpvsError::NoIpvs => {
                ApplyError::Unavailable(Unavailable::missing_feature(KernelFeature::IpVs))
            }
            IpvsError::Netns(e) => ApplyError::Netns(e),
            other => ApplyError::Mode(Box::new(other)),
        }
    }
}

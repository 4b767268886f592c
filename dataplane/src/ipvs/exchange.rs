//! How the IPVS mode's requests ([`NlRequest`]) reach the kernel or the stand-in: the
//! core executor runs them as a [`Request`], and the mode's controllers send them with
//! [`Netlink::netlink`].

use super::client::{IpvsClient, IpvsError};
use super::link;
use super::nl::NlSocket;
use super::request::{NlReply, NlRequest};
use crate::floor::error::ApplyError;
use crate::floor::netns::{write_sysctl, Netns};
use crate::floor::prereq::{KernelFeature, Unavailable};
use crate::floor::sync::standin::StandIn;
use crate::floor::sync::{Category, Executor, Kernel, Request};

impl NlRequest<'_> {
    /// The error of the kernel refusing it in `ns` with `source`, naming its step and
    /// what it asked. Not every errno is a refusal: the client answers a GET_SERVICE
    /// refused with ENOENT or ESRCH as "no such service".
    pub fn refused(&self, ns: &Netns, source: std::io::Error) -> ApplyError {
        let (step, asked) = (self.step(), self.describe());
        // Reads describe themselves by their step ("IPVS GET_SERVICE 10.96.0.1:80").
        let what = match asked.starts_with(step) {
            true => asked,
            false => format!("{step} ({asked})"),
        };
        match self {
            NlRequest::Ipvs(op) => IpvsError::refused(op, source).into(),
            NlRequest::IpvsBatch { .. }
            | NlRequest::GetService(_)
            | NlRequest::DumpServices
            | NlRequest::DumpDests(_) => IpvsError::Kernel { op: what, source }.into(),
            _ => ApplyError::Netlink {
                what: format!("{what} in {}", ns.name),
                source,
            },
        }
    }
}

/// Sends IPVS and rtnetlink requests through any executor: the one way this mode's
/// controllers reach them.
pub trait Netlink {
    fn netlink(&mut self, req: NlRequest<'_>) -> Result<NlReply, ApplyError>;
}

impl<E: Executor + ?Sized> Netlink for E {
    fn netlink(&mut self, req: NlRequest<'_>) -> Result<NlReply, ApplyError> {
        let mut x = Exchange {
            req: &req,
            reply: None,
        };
        self.request(&mut x)?;
        Ok(x.reply.unwrap_or(NlReply::Done))
    }
}

/// A request with room for its reply, as the executor runs it.
struct Exchange<'r, 'a> {
    req: &'r NlRequest<'a>,
    reply: Option<NlReply>,
}

impl Request for Exchange<'_, '_> {
    fn step(&self) -> &'static str {
        self.req.step()
    }

    fn category(&self) -> Category {
        Category::Netlink
    }

    fn kind(&self) -> &'static str {
        "netlink"
    }

    fn describe(&self) -> String {
        self.req.describe()
    }

    fn run(&mut self, kernel: &mut Kernel<'_>) -> Result<(), ApplyError> {
        self.reply = Some(send(kernel, self.req)?);
        Ok(())
    }

    fn answer(&mut self, standin: &mut dyn StandIn) -> bool {
        self.reply = super::standin::answer(standin, self.req);
        self.reply.is_some()
    }

    fn unanswered(&mut self) {
        self.reply = Some(NlReply::Done);
    }

    fn refused(&self, ns: &Netns, errno: i32) -> ApplyError {
        self.req
            .refused(ns, std::io::Error::from_raw_os_error(errno))
    }
}

/// The rtnetlink socket the executor keeps for this mode (its own type, so that it is
/// told apart from other handles).
struct RtSocket(NlSocket);

/// The IPVS client, opened in the namespace on first use, its timeout the deadline's.
fn ipvs<'k>(k: &'k mut Kernel<'_>) -> Result<&'k mut IpvsClient, ApplyError> {
    let budget = k.deadline.budget();
    let c = k.handle(|ns| Ok(IpvsClient::open_in(ns)?))?;
    c.set_timeout(budget)?;
    Ok(c)
}

/// The rtnetlink socket, opened in the namespace on first use, its timeout the
/// deadline's.
fn rt<'k>(k: &'k mut Kernel<'_>) -> Result<&'k mut NlSocket, ApplyError> {
    let budget = k.deadline.budget();
    let s = k.handle(|ns| {
        let s = ns.run(link::open)?.map_err(|source| ApplyError::Netlink {
            what: format!("rtnetlink socket in {}", ns.name),
            source,
        })?;
        Ok(RtSocket(s))
    })?;
    s.0.set_timeout(budget)
        .map_err(|source| ApplyError::Netlink {
            what: "rtnetlink socket".into(),
            source,
        })?;
    Ok(&mut s.0)
}

/// Sends `req` in the executor's namespace.
fn send(k: &mut Kernel<'_>, req: &NlRequest<'_>) -> Result<NlReply, ApplyError> {
    let ns = k.ns.clone();
    let nl = move |source: std::io::Error| req.refused(&ns, source);
    Ok(match req {
        NlRequest::Ipvs(op) => {
            let stats = ipvs(k)?.execute_ok(std::slice::from_ref(op), |_, _| false)?;
            k.wrote(stats.bytes);
            NlReply::Done
        }
        NlRequest::IpvsBatch { ops, tolerate } => {
            let stats = ipvs(k)?.execute_ok(ops, tolerate)?;
            k.wrote(stats.bytes);
            NlReply::Done
        }
        NlRequest::GetService(s) => NlReply::Service(ipvs(k)?.service(s)?),
        NlRequest::DumpServices => NlReply::Services(ipvs(k)?.services()?),
        NlRequest::DumpDests(s) => NlReply::Dests(ipvs(k)?.destinations(s)?),
        NlRequest::EnsureDummy(name) => {
            NlReply::Index(link::ensure_dummy(rt(k)?, name).map_err(nl)?)
        }
        NlRequest::Addresses(i) => NlReply::Addresses(link::addresses(rt(k)?, *i).map_err(nl)?),
        NlRequest::AddAddresses(i, ips) => {
            let n = link::add_addresses(rt(k)?, *i, ips).map_err(nl)?;
            k.wrote(n);
            NlReply::Done
        }
        NlRequest::DelAddresses(i, ips) => {
            let n = link::del_addresses(rt(k)?, *i, ips).map_err(nl)?;
            k.wrote(n);
            NlReply::Done
        }
        NlRequest::Sysctls(list) => {
            let list: Vec<(&'static str, &'static str)> = list.to_vec();
            k.ns.run(move || -> Result<(), ApplyError> {
                for (key, value) in list {
                    write_sysctl(key, value).map_err(|source| {
                        // IPVS's sysctls exist only where the kernel has IPVS.
                        if key.starts_with("net/ipv4/vs/")
                            && source.kind() == std::io::ErrorKind::NotFound
                        {
                            return ApplyError::Unavailable(Unavailable::missing_feature(
                                KernelFeature::IpVs,
                            ));
                        }
                        ApplyError::Sysctl { key, value, source }
                    })?;
                }
                Ok(())
            })??;
            NlReply::Done
        }
    })
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::ipvs::message::{Op, RealServer, VirtualService};

    fn refused(req: NlRequest<'_>, errno: i32) -> String {
        let ns = Netns::named("kpb-t-node");
        req.refused(&ns, io::Error::from_raw_os_error(errno))
            .to_string()
    }

    #[test]
    fn a_refused_request_names_its_step_what_it_asked_and_the_errno() {
        let vip = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1));
        let vs = VirtualService::tcp(vip, 80, "rr");
        let rs = RealServer::masq(IpAddr::V4(Ipv4Addr::new(10, 244, 0, 2)), 8080);
        assert_eq!(
            refused(NlRequest::Ipvs(Op::NewService(&vs)), libc::EEXIST),
            "IPVS NEW_SERVICE (new service -t 10.96.0.1:80): EEXIST: File exists (os error 17)"
        );
        assert_eq!(
            refused(NlRequest::Ipvs(Op::NewDest(&vs, rs)), libc::ENOMEM),
            "IPVS NEW_DEST (new real server 10.244.0.2:8080 of -t 10.96.0.1:80): ENOMEM: Cannot allocate memory (os error 12)"
        );
        assert_eq!(
            refused(NlRequest::DumpDests(&vs), libc::ENOENT),
            "IPVS GET_DEST dump 10.96.0.1:80: ENOENT: No such file or directory (os error 2)"
        );
        assert_eq!(
            refused(NlRequest::EnsureDummy("kube-ipvs0"), libc::EPERM),
            "rtnetlink link (ensure dummy device kube-ipvs0) in kpb-t-node: EPERM: Operation not permitted (os error 1)"
        );
    }

    #[test]
    fn a_refusal_from_the_kernel_reads_as_one_at_the_seam() {
        let vs = VirtualService::tcp(IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1)), 80, "rr");
        let op = Op::DelService(&vs);
        let client: ApplyError = IpvsError::refused(&op, io::Error::from_raw_os_error(2)).into();
        assert_eq!(
            client.to_string(),
            refused(NlRequest::Ipvs(Op::DelService(&vs)), libc::ENOENT)
        );
    }
}

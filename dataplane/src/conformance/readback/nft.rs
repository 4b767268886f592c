//! `nft list table ip kube-proxy`, normalised for comparing the kernel with the nft
//! stand-in.

use crate::backend::ApplyError;
use crate::sync::Executor;

pub(super) fn table(io: &mut dyn Executor) -> Result<String, ApplyError> {
    super::listing(io, "nft", &["list", "table", "ip", "kube-proxy"])
}

//! The data path of a case: the backend server behind every endpoint (`serve`), the
//! load generator in the client namespace (`load`), CPU sampling (`cpustat`), and the
//! measurement that drives them through the VIPs and directly (`measure`).

pub mod cpustat;
pub mod load;
pub mod measure;
pub mod serve;

pub use measure::{measure, start_backend};

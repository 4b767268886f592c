//! The data path of a case: the backend server behind every endpoint (`serve`), the
//! load generator in the client namespace (`load`), CPU sampling (`cpustat`), the
//! measurement that drives them through the VIPs and directly (`measure`), and the
//! targets it aims at with what follows from their phases (`targets`).

pub mod churn;
pub mod cpustat;
pub mod load;
pub mod measure;
pub mod replicates;
pub mod serve;
mod targets;
pub mod transit;

pub use measure::{measure, start_backend};

//! What the results mean: case rows keyed for comparison (`cases`), the capacity plan
//! (`capacity`), run-against-run comparison (`compare`) and which machine a run was
//! (`fingerprint`), where a sync's time goes
//! (`breakdown`) and what kube-proxy's loop adds over the floor (`overhead`). Pure
//! functions over [`crate::results::Results`]; the report and the CLI present them.

pub mod answer;
pub mod breakdown;
pub mod capacity;
pub mod cases;
pub mod churn;
pub mod claims;
pub mod compare;
pub mod figures;
pub mod fingerprint;
pub mod lookup;
pub mod overhead;
pub mod published;
pub mod stats;

#[cfg(test)]
mod tests_one_rule;

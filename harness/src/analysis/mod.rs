//! What the results mean: case rows keyed for comparison (`cases`), the capacity plan
//! (`capacity`) and run-against-run comparison (`compare`). Pure functions over
//! [`crate::results::Results`]; the report and the CLI present them.

pub mod capacity;
pub mod cases;
pub mod compare;

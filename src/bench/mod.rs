//! Benchmarks behind `palaver bench`: measured figures for the parts whose speed matters to a
//! user — embedding throughput, retrieval latency and recall.

pub mod embed;
pub mod retrieval;

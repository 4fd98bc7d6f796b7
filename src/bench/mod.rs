//! Benchmarks behind `palaver bench`: measured figures for the parts whose speed matters to
//! a user (retrieval latency and recall).

pub mod retrieval;

//! Throughput benchmarks of the heavy stages, run by `palaver bench`.

pub mod embed;

//! Wall-clock time as record batches carry it: the storage crate's clock.

pub use peregrine_shards::time::now_ms;

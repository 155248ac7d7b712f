//! Authentication that every front end shares: SASL messages (`sasl`: PLAIN and
//! SCRAM-SHA-256/512, server and client side, sans-IO), the failed-login limiter
//! (`logins`, per shard and peer address), and a server-side SASL exchange over the
//! engine's user store with that limiter (`session`). The credentials they check
//! live in the user store (`peregrine_shards::security::users`, read through the
//! engine); each front end carries the messages in its own protocol's frames.

pub mod logins;
pub mod sasl;
pub mod session;

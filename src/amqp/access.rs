//! ACLs on AMQP methods (`--acls`): the operation on the queue or exchange each method
//! needs, RabbitMQ's configure/write/read permissions read as Kafka's operations, and
//! 403 ACCESS_REFUSED (a channel error, as RabbitMQ sends it) when the connection's
//! principal may not. Each check runs before the method acts, so a denied method
//! changes nothing.
//!
//! | method | operation |
//! |---|---|
//! | `queue.declare`, `exchange.declare` | Create (passive: Describe) |
//! | `queue.delete`, `queue.purge`, `exchange.delete` | Delete |
//! | `basic.publish` | Write on the exchange (the default exchange: Write on the queue) |
//! | `basic.consume`, `basic.get` | Read on the queue |
//! | `queue.bind`/`unbind` | Write on the queue, Read on the exchange |
//! | `exchange.bind`/`unbind` | Write on the destination, Read on the source |
//!
//! A stream declared over AMQP is checked as a Queue of its name (that is what the AMQP
//! client sees); its Kafka clients need Topic ACLs for it.

use super::connection::Conn;
use super::errors::{self, AmqpError};
use peregrine_shards::security::{Operation, ResourceType};
use std::net::{IpAddr, Ipv4Addr};

/// Ok when the connection's principal may do `op` to queue `name`.
pub fn queue(conn: &Conn, op: Operation, name: &str) -> Result<(), AmqpError> {
    check(conn, op, ResourceType::Queue, name)
}

/// Ok when the connection's principal may do `op` to exchange `name`.
pub fn exchange(conn: &Conn, op: Operation, name: &str) -> Result<(), AmqpError> {
    check(conn, op, ResourceType::Exchange, name)
}

fn check(conn: &Conn, op: Operation, rtype: ResourceType, name: &str) -> Result<(), AmqpError> {
    let host = conn.peer_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let principal = conn.principal.borrow();
    if conn
        .engine
        .principal_allowed(&principal, host, op, rtype, name)
    {
        return Ok(());
    }
    // RabbitMQ's wording, with the operation the ACLs lack.
    Err(AmqpError::new(
        errors::ACCESS_REFUSED,
        format!(
            "{op:?} access to {} '{name}' in vhost '/' refused for user '{}'",
            rtype.name(),
            conn.user.borrow()
        ),
    ))
}

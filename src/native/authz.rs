//! What each native request needs under `--acls`, in Kafka's terms (operation on a
//! resource), checked before the request reaches the engine so that a denied request
//! changes nothing; and the listings (metadata, queues, exchanges, groups) cut to what
//! the principal may see. One exhaustive match: a new request kind does not compile
//! until it says what it needs.
//!
//! The mapping follows Kafka for streams (produce Write Topic, fetch Read Topic, group
//! calls Read Group, offset commits Read Group and Read Topic) and RabbitMQ's
//! permissions for queues (publish Write, receive/ack Read, bind Write on the queue and
//! Read on the exchange); the default exchange `""` is the queue its routing key names.

use super::messages::{BindingSpec, Request, Response};
use crate::engine::Engine;
use peregrine_shards::security::acls::{Operation, ResourceType};
use std::net::IpAddr;

/// The cluster resource's one name, as in Kafka.
pub const CLUSTER: &str = "kafka-cluster";

/// Whether ACLs are enforced (`--acls`); when they are not, nothing here needs to run.
pub fn enforced(engine: &Engine) -> bool {
    engine.config().security.acls
}

/// Who is asking, as the ACLs see a connection.
#[derive(Debug, Clone)]
pub struct Requester {
    /// `User:NAME` (`User:ANONYMOUS` before authentication).
    pub principal: std::rc::Rc<str>,
    pub host: IpAddr,
}

impl Requester {
    fn allowed(&self, engine: &Engine, op: Operation, rtype: ResourceType, name: &str) -> bool {
        engine.principal_allowed(&self.principal, self.host, op, rtype, name)
    }

    /// Every need of `request` met, or the first one that is not, as the client's text.
    pub fn check(&self, engine: &Engine, request: &Request) -> Result<(), String> {
        for (op, rtype, name) in needs(request) {
            if rtype == ResourceType::Topic
                && op == Operation::Create
                && self.allowed(engine, op, ResourceType::Cluster, CLUSTER)
            {
                // Kafka: Create on the cluster may create any topic.
                continue;
            }
            if !self.allowed(engine, op, rtype, name) {
                return Err(format!(
                    "{} may not {op:?} {} '{name}' (ACLs, --acls)",
                    self.principal,
                    resource_word(rtype)
                ));
            }
        }
        Ok(())
    }

    /// Cuts a listing to what the principal may Describe (whole listings need no ACL
    /// of their own, as Kafka's Metadata for all topics).
    pub fn filter(&self, engine: &Engine, response: &mut Response) {
        let may = |rtype, name: &str| self.allowed(engine, Operation::Describe, rtype, name);
        match response {
            Response::Metadata { topics, .. } => {
                topics.retain(|t| may(ResourceType::Topic, &t.name))
            }
            Response::Queues { queues } => queues.retain(|q| may(ResourceType::Queue, &q.name)),
            Response::Exchanges {
                exchanges,
                bindings,
            } => {
                exchanges.retain(|(name, _)| may(ResourceType::Exchange, name));
                bindings.retain(|b| may(ResourceType::Exchange, &b.exchange));
            }
            Response::Groups { groups } => groups.retain(|(g, _)| may(ResourceType::Group, g)),
            _ => {}
        }
    }
}

fn resource_word(rtype: ResourceType) -> &'static str {
    match rtype {
        ResourceType::Topic => "topic",
        ResourceType::Group => "group",
        ResourceType::TransactionalId => "transactional id",
        ResourceType::Cluster => "cluster",
        ResourceType::Queue => "queue",
        ResourceType::Exchange => "exchange",
    }
}

type Need<'a> = (Operation, ResourceType, &'a str);

/// Binding an exchange: Write on what it feeds, Read on the exchange (RabbitMQ).
fn binding(spec: &BindingSpec) -> Vec<Need<'_>> {
    let mut needs = vec![(
        Operation::Read,
        ResourceType::Exchange,
        spec.exchange.as_str(),
    )];
    if let Some(queue) = &spec.queue {
        needs.push((Operation::Write, ResourceType::Queue, queue));
    }
    if let Some(topic) = &spec.topic {
        needs.push((Operation::Write, ResourceType::Topic, topic));
    }
    needs
}

/// What one request needs; empty for the handshake and for listings (filtered after).
pub fn needs(request: &Request) -> Vec<Need<'_>> {
    use Operation as O;
    use ResourceType as R;
    let cluster = |op| vec![(op, R::Cluster, CLUSTER)];
    match request {
        Request::ScramFirst { .. } | Request::ScramFinal { .. } => Vec::new(),
        // Listings: cut to what may be described (see `filter`).
        Request::Metadata { topics: None }
        | Request::ListQueues
        | Request::ListExchanges
        | Request::ListGroups => Vec::new(),
        Request::Metadata { topics: Some(t) } => t
            .iter()
            .map(|t| (O::Describe, R::Topic, t.as_str()))
            .collect(),
        Request::CreateTopic(spec) => vec![(O::Create, R::Topic, spec.name.as_str())],
        Request::DeleteTopic { name } => vec![(O::Delete, R::Topic, name.as_str())],
        Request::DescribeTopic { name } => vec![(O::Describe, R::Topic, name.as_str())],
        Request::Produce { topic, .. } => vec![(O::Write, R::Topic, topic.as_str())],
        Request::Fetch { topic, .. } => vec![(O::Read, R::Topic, topic.as_str())],
        Request::ListOffsets { topic, .. } | Request::PartitionStats { topic, .. } => {
            vec![(O::Describe, R::Topic, topic.as_str())]
        }
        Request::DeleteRecords { topic, .. } => vec![(O::Delete, R::Topic, topic.as_str())],
        Request::CreatePartitions { topic, .. } => vec![(O::Alter, R::Topic, topic.as_str())],
        Request::JoinGroup { group, topics, .. } => {
            let mut needs = vec![(O::Read, R::Group, group.as_str())];
            needs.extend(topics.iter().map(|t| (O::Describe, R::Topic, t.as_str())));
            needs
        }
        Request::Heartbeat { group, .. } | Request::LeaveGroup { group, .. } => {
            vec![(O::Read, R::Group, group.as_str())]
        }
        Request::CommitOffsets { group, offsets, .. } => {
            let mut needs = vec![(O::Read, R::Group, group.as_str())];
            needs.extend(
                offsets
                    .iter()
                    .map(|o| (O::Read, R::Topic, o.topic.as_str())),
            );
            needs
        }
        Request::FetchOffsets { group, topic } => {
            let mut needs = vec![(O::Describe, R::Group, group.as_str())];
            if !topic.is_empty() {
                needs.push((O::Describe, R::Topic, topic.as_str()));
            }
            needs
        }
        Request::DescribeGroup { group } => vec![(O::Describe, R::Group, group.as_str())],
        Request::DeleteGroup { group } => vec![(O::Delete, R::Group, group.as_str())],
        Request::InitProducerId { .. } => cluster(O::IdempotentWrite),
        Request::ShardStats { .. } => cluster(O::Describe),
        Request::DeclareQueue(spec) => vec![(O::Create, R::Queue, spec.name.as_str())],
        Request::DeleteQueue { name } | Request::PurgeQueue { name } => {
            vec![(O::Delete, R::Queue, name.as_str())]
        }
        Request::QueueStats { name } => vec![(O::Describe, R::Queue, name.as_str())],
        Request::Publish { queue, .. } | Request::PublishBatch { queue, .. } => {
            vec![(O::Write, R::Queue, queue.as_str())]
        }
        Request::Receive { queue, .. }
        | Request::Ack { queue, .. }
        | Request::Nack { queue, .. }
        | Request::Subscribe { queue, .. } => vec![(O::Read, R::Queue, queue.as_str())],
        Request::DeclareExchange { name, .. } => vec![(O::Create, R::Exchange, name.as_str())],
        Request::DeleteExchange { name } => vec![(O::Delete, R::Exchange, name.as_str())],
        Request::Bind(spec) | Request::Unbind(spec) => binding(spec),
        Request::PublishToExchange {
            exchange,
            routing_key,
            ..
        } if exchange.is_empty() => vec![(O::Write, R::Queue, routing_key.as_str())],
        Request::PublishToExchange { exchange, .. } => {
            vec![(O::Write, R::Exchange, exchange.as_str())]
        }
        Request::AlterUser(_) | Request::CreateAcls { .. } | Request::DeleteAcls { .. } => {
            cluster(O::Alter)
        }
        Request::ListUsers | Request::DescribeAcls { .. } => cluster(O::Describe),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::messages::{Acks, CommitEntry, PublishSpec, ScramMechanism};
    use Operation as O;
    use ResourceType as R;

    #[test]
    fn each_request_needs_what_kafka_and_rabbitmq_would_ask() {
        let publish = |exchange: &str| Request::PublishToExchange {
            exchange: exchange.into(),
            routing_key: "jobs".into(),
            spec: PublishSpec::default(),
        };
        let cases: Vec<(Request, Vec<Need>)> = vec![
            (
                Request::Produce {
                    topic: "t".into(),
                    partition: 0,
                    acks: Acks::Leader,
                },
                vec![(O::Write, R::Topic, "t")],
            ),
            (
                Request::Receive {
                    queue: "q".into(),
                    max: 1,
                    wait_ms: 0,
                    auto_ack: true,
                },
                vec![(O::Read, R::Queue, "q")],
            ),
            // The default exchange is the queue its routing key names.
            (publish(""), vec![(O::Write, R::Queue, "jobs")]),
            (publish("logs"), vec![(O::Write, R::Exchange, "logs")]),
            (
                Request::Bind(BindingSpec {
                    exchange: "logs".into(),
                    queue: Some("q".into()),
                    ..BindingSpec::default()
                }),
                vec![(O::Read, R::Exchange, "logs"), (O::Write, R::Queue, "q")],
            ),
            (
                Request::CommitOffsets {
                    group: "g".into(),
                    member_id: String::new(),
                    generation: -1,
                    offsets: vec![CommitEntry {
                        topic: "t".into(),
                        partition: 0,
                        offset: 5,
                    }],
                },
                vec![(O::Read, R::Group, "g"), (O::Read, R::Topic, "t")],
            ),
            (
                Request::ScramFirst {
                    mechanism: ScramMechanism::ScramSha256,
                    client_first: Vec::new(),
                },
                Vec::new(),
            ),
            (Request::ListUsers, vec![(O::Describe, R::Cluster, CLUSTER)]),
            (
                Request::CreateAcls {
                    bindings: Vec::new(),
                },
                vec![(O::Alter, R::Cluster, CLUSTER)],
            ),
            // A listing is cut afterwards; naming topics needs Describe on each.
            (Request::Metadata { topics: None }, Vec::new()),
            (
                Request::Metadata {
                    topics: Some(vec!["a".into()]),
                },
                vec![(O::Describe, R::Topic, "a")],
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(needs(&request), expected, "{request:?}");
        }
    }
}

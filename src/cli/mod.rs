//! Command-line front end: `serve` runs the broker; the other commands are native
//! clients of a running broker (`user` and `acl` also work on a stopped broker's data
//! directory).

mod acl;
pub mod auth;
mod consume;
mod group;
pub mod produce;
mod queue;
pub mod serve;
mod store;
pub mod tls;
mod topic;
mod user;

use clap::{Parser, Subcommand};

pub type CliResult = Result<(), Box<dyn std::error::Error>>;

pub const BOOTSTRAP_DEFAULT: &str = "127.0.0.1:7070";

/// An optional setting for a listing: its value, or "-" when unset.
fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

#[derive(Parser, Debug)]
#[command(
    name = "peregrine",
    version,
    about = "Thread-per-core message broker: Kafka-style streams and RabbitMQ/SQS-style queues"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the broker.
    Serve(Box<serve::ServeArgs>),
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Send stdin lines to a topic, one message per line.
    Produce(produce::ProduceArgs),
    /// Print messages of a topic.
    Consume(consume::ConsumeArgs),
    /// List and describe consumer groups.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Declare, list, inspect, purge and delete message queues.
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// Declare, list and delete exchanges.
    #[command(subcommand)]
    Exchange(queue::ExchangeCommand),
    /// Bind an exchange to a queue or a topic.
    Bind(queue::BindArgs),
    /// Remove a binding.
    Unbind(queue::BindArgs),
    /// Publish stdin lines to a queue or through an exchange, one message per line.
    Publish(queue::PublishArgs),
    /// Receive messages from a queue (pull), one per line.
    Receive(queue::ReceiveArgs),
    /// Push mode: print messages as they come (acking each), up to `--prefetch` unacked.
    Subscribe(queue::SubscribeArgs),
    /// Acknowledge received messages by receipt handle.
    Ack(queue::HandlesArgs),
    /// Give received messages back (requeue), or `--reject` them to the dead-letter target.
    Nack(queue::HandlesArgs),
    /// Add, remove and list users (SCRAM credentials, SigV4 access keys).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Add, remove and list ACL bindings (Kafka's model; enforced with `serve --acls`).
    #[command(subcommand)]
    Acl(acl::AclCommand),
    /// Load-generate against a broker and report throughput and latency (HDR).
    Bench(crate::bench::BenchArgs),
    /// Check how far this host is from a low-latency setup.
    Tune(crate::tune::TuneArgs),
}

pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Topic(cmd) => topic::run(cmd),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Group(cmd) => group::run(cmd),
        Command::Queue(cmd) => queue::run(cmd),
        Command::Exchange(cmd) => queue::exchange(cmd),
        Command::Bind(args) => queue::bind(args),
        Command::Unbind(args) => queue::unbind(args),
        Command::Publish(args) => queue::publish(args),
        Command::Receive(args) => queue::receive(args),
        Command::Subscribe(args) => queue::subscribe(args),
        Command::Ack(args) => queue::ack(args),
        Command::Nack(args) => queue::nack(args),
        Command::User(cmd) => user::run(cmd),
        Command::Acl(cmd) => acl::run(cmd),
        Command::Bench(args) => crate::bench::run(args),
        Command::Tune(args) => crate::tune::run(args),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_s_flags_are_consistent() {
        use clap::CommandFactory;
        // Flags flattened from several places (broker, TLS, credentials) must not clash.
        super::Cli::command().debug_assert();
    }
}

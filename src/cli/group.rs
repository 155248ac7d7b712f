//! `peregrine group ...`

use super::CliResult;
use crate::native::messages::{Request, Response};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups and their states.
    List {
        #[command(flatten)]
        broker: super::tls::Broker,
    },
    /// Members, generation and assignment of a group.
    Describe {
        group: String,
        #[command(flatten)]
        broker: super::tls::Broker,
    },
}

pub fn run(cmd: GroupCommand) -> CliResult {
    match cmd {
        GroupCommand::List { broker } => {
            if let Response::Groups { groups } = broker.connect()?.call(Request::ListGroups, &[])?.0
            {
                for (group, state) in groups {
                    println!("{group}\t{state}");
                }
            }
        }
        GroupCommand::Describe { group, broker } => {
            let request = Request::DescribeGroup { group };
            if let Response::GroupDescribed {
                group,
                state,
                generation,
                members,
            } = broker.connect()?.call(request, &[])?.0
            {
                println!("group {group} state={state} generation={generation}");
                for m in members {
                    let parts: Vec<String> = m
                        .assignment
                        .iter()
                        .map(|a| format!("{}:{:?}", a.topic, a.partitions))
                        .collect();
                    println!("{}\t{}\t{}", m.member_id, m.client_id, parts.join(" "));
                }
            }
        }
    }
    Ok(())
}

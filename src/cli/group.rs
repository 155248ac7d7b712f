//! `peregrine group ...`

use super::{CliResult, BOOTSTRAP_DEFAULT};
use crate::client::Client;
use crate::native::messages::{Request, Response};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups and their states.
    List {
        #[arg(long, default_value = BOOTSTRAP_DEFAULT)]
        bootstrap: String,
    },
    /// Members, generation and assignment of a group.
    Describe {
        group: String,
        #[arg(long, default_value = BOOTSTRAP_DEFAULT)]
        bootstrap: String,
    },
}

pub fn run(cmd: GroupCommand) -> CliResult {
    match cmd {
        GroupCommand::List { bootstrap } => {
            if let Response::Groups { groups } = Client::connect(&bootstrap)?
                .call(Request::ListGroups, &[])?
                .0
            {
                for (group, state) in groups {
                    println!("{group}\t{state}");
                }
            }
        }
        GroupCommand::Describe { group, bootstrap } => {
            let request = Request::DescribeGroup { group };
            if let Response::GroupDescribed {
                group,
                state,
                generation,
                members,
            } = Client::connect(&bootstrap)?.call(request, &[])?.0
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

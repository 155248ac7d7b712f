//! SNS's names: topic ARNs `arn:aws:sns:{region}:{account}:{name}`, subscription ARNs
//! `{topic ARN}:{id}`, with the region and account of `--sqs-region`/`--sqs-account-id`
//! (which cover SNS too). An ARN of another region or account names nothing here, as
//! one SNS cannot see. (The queue ARNs Subscribe takes are the engine's to read.)

use crate::config::SqsSettings;
use peregrine_aws_wire::sns::check_topic_name;

pub fn subscription_arn(settings: &SqsSettings, topic: &str, id: &str) -> String {
    format!("{}:{id}", settings.topic_arn(topic))
}

/// What an SNS ARN names: a topic, or one of its subscriptions.
#[derive(Debug, PartialEq, Eq)]
pub enum Named<'a> {
    Topic(&'a str),
    Subscription { topic: &'a str, id: &'a str },
}

/// What `arn` names, if it is an SNS ARN of this region and account with a valid topic
/// name (not yet checked to exist).
pub fn parse<'a>(arn: &'a str, settings: &SqsSettings) -> Option<Named<'a>> {
    let mut parts = arn.split(':');
    let fixed = [parts.next()?, parts.next()?, parts.next()?];
    let (region, account, topic) = (parts.next()?, parts.next()?, parts.next()?);
    let id = parts.next();
    let ours = fixed == ["arn", "aws", "sns"]
        && region == settings.region
        && account == settings.account_id
        && valid_topic_name(topic)
        && parts.next().is_none();
    match id {
        _ if !ours => None,
        None => Some(Named::Topic(topic)),
        Some(id) if valid_subscription_id(id) => Some(Named::Subscription { topic, id }),
        Some(_) => None,
    }
}

/// The topic a topic ARN names.
pub fn topic_name<'a>(arn: &'a str, settings: &SqsSettings) -> Option<&'a str> {
    match parse(arn, settings)? {
        Named::Topic(topic) => Some(topic),
        Named::Subscription { .. } => None,
    }
}

/// Whether SNS allows the topic name (1 to 256 of `[A-Za-z0-9_-]`, `.fifo`
/// at the end of a FIFO topic's).
fn valid_topic_name(name: &str) -> bool {
    check_topic_name(name).is_ok()
}

/// Subscription ids are what the engine makes (UUIDs); anything of their alphabet and
/// size is looked up, the rest names nothing.
fn valid_subscription_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && plain(id)
}

fn plain(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SqsSettings {
        SqsSettings {
            region: "eu-west-3".into(),
            account_id: "123456789012".into(),
            ..SqsSettings::default()
        }
    }

    #[test]
    fn topic_and_subscription_arns_read_back() {
        let s = settings();
        let arn = s.topic_arn("orders");
        assert_eq!(arn, "arn:aws:sns:eu-west-3:123456789012:orders");
        assert_eq!(parse(&arn, &s), Some(Named::Topic("orders")));
        assert_eq!(topic_name(&arn, &s), Some("orders"));
        let sub = subscription_arn(&s, "orders.fifo", "0b0e-41");
        assert_eq!(
            parse(&sub, &s),
            Some(Named::Subscription {
                topic: "orders.fifo",
                id: "0b0e-41"
            })
        );
        assert_eq!(topic_name(&sub, &s), None);
    }

    #[test]
    fn arns_of_another_region_account_or_service_name_nothing() {
        let s = settings();
        for other in [
            "arn:aws:sns:us-east-1:123456789012:orders",
            "arn:aws:sns:eu-west-3:000000000000:orders",
            "arn:aws:sqs:eu-west-3:123456789012:orders",
            "arn:aws:sns:eu-west-3:123456789012:bad name",
            "arn:aws:sns:eu-west-3:123456789012:",
            "arn:aws:sns:eu-west-3:123456789012:orders:id:extra",
            "arn:aws:sns:eu-west-3:123456789012:orders:",
            "orders",
            "",
        ] {
            assert_eq!(parse(other, &s), None, "{other}");
        }
    }
}

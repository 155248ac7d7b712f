//! Queue URLs and ARNs: `http://{Host}/{account}/{name}` and
//! `arn:aws:sqs:{region}:{account}:{name}`, with the account and region of
//! `--sqs-account-id` and `--sqs-region`.
//!
//! The URL's host is the request's `Host` header: how this client reached the broker
//! (through a proxy or a port mapping the listen address would be wrong), falling back
//! to `--http-addr`. A URL is read back by its last two path segments only, so a client
//! may reach the same queue under any host; an account other than ours names no queue
//! here (QueueDoesNotExist), as SQS answers for another account's queue one cannot see.

use crate::config::SqsSettings;
use peregrine_aws_wire::sqs::{check_queue_name, ErrorCode, WireError};

/// A queue's URL as the client reached us (`https` over the TLS listener).
pub fn queue_url(scheme: &str, host: &str, settings: &SqsSettings, name: &str) -> String {
    format!("{scheme}://{host}/{}/{name}", settings.account_id)
}

/// The queue a URL (or a request path, `/{account}/{name}`) names.
pub fn queue_name(url: &str, settings: &SqsSettings) -> Result<String, WireError> {
    let missing = || {
        WireError::new(
            ErrorCode::QueueDoesNotExist,
            format!("The specified queue does not exist: {url}"),
        )
    };
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, path)| path),
        None => url.trim_start_matches('/'),
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let (account, name) = path
        .trim_end_matches('/')
        .split_once('/')
        .ok_or_else(missing)?;
    if account != settings.account_id || !valid_name(name) {
        return Err(missing());
    }
    Ok(name.to_string())
}

/// Whether SQS allows the name: 1 to 80 of `[A-Za-z0-9_-]`, a FIFO queue's ending in
/// `.fifo`.
pub fn valid_name(name: &str) -> bool {
    check_queue_name(name).is_ok()
}

/// The queue an ARN names, if it is one of this region and account with a name SQS
/// allows.
pub fn arn_queue(arn: &str, settings: &SqsSettings) -> Option<String> {
    settings
        .queue_of_arn(arn)
        .filter(|name| valid_name(name))
        .map(str::to_string)
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
    fn a_url_names_its_queue_whatever_the_host() {
        let s = settings();
        let url = queue_url("http", "localhost:9324", &s, "orders");
        assert_eq!(url, "http://localhost:9324/123456789012/orders");
        assert_eq!(queue_name(&url, &s), Ok("orders".to_string()));
        let other = "https://sqs.eu-west-3.amazonaws.com/123456789012/orders";
        assert_eq!(queue_name(other, &s), Ok("orders".to_string()));
        assert_eq!(
            queue_name("/123456789012/orders", &s),
            Ok("orders".to_string())
        );
    }

    #[test]
    fn another_account_or_a_bad_name_is_no_queue() {
        let s = settings();
        for url in [
            "http://h/999999999999/orders",
            "http://h/123456789012/",
            "http://h/123456789012/a/b",
            "http://h/123456789012/bad%20name",
            "http://h/orders",
            "",
        ] {
            let e = queue_name(url, &s).err().map(|e| e.code);
            assert_eq!(e, Some(ErrorCode::QueueDoesNotExist), "{url}");
        }
    }

    #[test]
    fn arns_of_this_region_and_account_only() {
        let s = settings();
        let a = s.queue_arn("dlq");
        assert_eq!(a, "arn:aws:sqs:eu-west-3:123456789012:dlq");
        assert_eq!(arn_queue(&a, &s), Some("dlq".to_string()));
        for other in [
            "arn:aws:sqs:us-east-1:123456789012:dlq",
            "arn:aws:sqs:eu-west-3:000000000000:dlq",
            "arn:aws:sns:eu-west-3:123456789012:dlq",
            "arn:aws:sqs:eu-west-3:123456789012:bad:name",
            "dlq",
        ] {
            assert_eq!(arn_queue(other, &s), None, "{other}");
        }
    }

    #[test]
    fn names_are_1_to_80_of_the_sqs_characters() {
        assert!(valid_name("a-B_9"));
        assert!(valid_name(&"x".repeat(80)));
        assert!(valid_name("q.fifo"));
        for bad in ["", "bad name", "q.b.fifo", ".fifo", "é", &"x".repeat(81)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}

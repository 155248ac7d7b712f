//! Delivery policies: the retry schedule of HTTP deliveries, as SNS spells it. A
//! subscription's DeliveryPolicy is `{"healthyRetryPolicy": {...}}`; a topic's is
//! `{"http": {"defaultHealthyRetryPolicy": {...}, "disableSubscriptionOverrides": b}}`.
//! Both are checked here against SNS's rules when set; the fan-out worker reads them
//! when it delivers (a subscription's own retry policy, else its topic's default, else
//! SNS's). Throttle, sickly-retry and request policies, and
//! `disableSubscriptionOverrides`, are refused: nothing here would honour them.

use peregrine_aws_wire::sns::errors::WireError;
use serde::{Deserialize, Serialize};

/// SNS's bounds on a healthy retry policy.
const RETRIES_MAX: u32 = 100;
const DELAY_TARGET_MAX_S: u32 = 3600;
const BACKOFF_FUNCTIONS: [&str; 4] = ["linear", "arithmetic", "geometric", "exponential"];

/// A healthy retry policy, every field at SNS's default when not given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct RetryPolicy {
    min_delay_target: u32,
    max_delay_target: u32,
    num_retries: u32,
    num_max_delay_retries: u32,
    num_no_delay_retries: u32,
    num_min_delay_retries: u32,
    backoff_function: String,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            min_delay_target: 20,
            max_delay_target: 20,
            num_retries: 3,
            num_max_delay_retries: 0,
            num_no_delay_retries: 0,
            num_min_delay_retries: 0,
            backoff_function: "linear".to_string(),
        }
    }
}

impl RetryPolicy {
    fn check(&self) -> Result<(), String> {
        let phases = self.num_no_delay_retries as u64
            + self.num_min_delay_retries as u64
            + self.num_max_delay_retries as u64;
        if self.num_retries > RETRIES_MAX {
            Err(format!("numRetries must be at most {RETRIES_MAX}"))
        } else if phases > u64::from(self.num_retries) {
            Err("numNoDelayRetries + numMinDelayRetries + numMaxDelayRetries must not exceed numRetries".into())
        } else if self.min_delay_target < 1 || self.min_delay_target > self.max_delay_target {
            Err("minDelayTarget must be from 1 to maxDelayTarget".into())
        } else if self.max_delay_target > DELAY_TARGET_MAX_S {
            Err(format!(
                "maxDelayTarget must be at most {DELAY_TARGET_MAX_S}"
            ))
        } else if !BACKOFF_FUNCTIONS.contains(&self.backoff_function.as_str()) {
            Err(format!(
                "backoffFunction must be one of {}",
                BACKOFF_FUNCTIONS.join(", ")
            ))
        } else {
            Ok(())
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SubscriptionPolicy {
    healthy_retry_policy: Option<RetryPolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicPolicy {
    http: Option<TopicHttpPolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TopicHttpPolicy {
    default_healthy_retry_policy: Option<RetryPolicy>,
    #[serde(default)]
    disable_subscription_overrides: bool,
}

fn invalid(what: &str, why: impl std::fmt::Display) -> WireError {
    WireError::invalid(format!("{what}: {why}"))
}

fn subscription_policy(json: &str) -> Result<SubscriptionPolicy, WireError> {
    let policy: SubscriptionPolicy =
        serde_json::from_str(json).map_err(|e| invalid("DeliveryPolicy", e))?;
    if let Some(retry) = &policy.healthy_retry_policy {
        retry.check().map_err(|e| invalid("DeliveryPolicy", e))?;
    }
    Ok(policy)
}

fn topic_policy(json: &str) -> Result<TopicPolicy, WireError> {
    let policy: TopicPolicy =
        serde_json::from_str(json).map_err(|e| invalid("DeliveryPolicy", e))?;
    let retry = policy
        .http
        .as_ref()
        .and_then(|h| h.default_healthy_retry_policy.as_ref());
    if let Some(retry) = retry {
        retry.check().map_err(|e| invalid("DeliveryPolicy", e))?;
    }
    if policy
        .http
        .as_ref()
        .is_some_and(|h| h.disable_subscription_overrides)
    {
        return Err(invalid(
            "DeliveryPolicy",
            "disableSubscriptionOverrides is not supported by this broker: a subscription's own policy applies",
        ));
    }
    Ok(policy)
}

/// Whether SNS takes `json` as an http subscription's DeliveryPolicy.
pub fn check_subscription_delivery_policy(json: &str) -> Result<(), WireError> {
    subscription_policy(json).map(|_| ())
}

/// Whether SNS takes `json` as a topic's DeliveryPolicy.
pub fn check_topic_delivery_policy(json: &str) -> Result<(), WireError> {
    topic_policy(json).map(|_| ())
}

/// A topic's EffectiveDeliveryPolicy: its own with SNS's defaults filled in.
pub fn effective_topic_delivery_policy(own: Option<&str>) -> String {
    let http = own
        .and_then(|p| topic_policy(p).ok())
        .and_then(|p| p.http)
        .unwrap_or_default();
    serde_json::json!({
        "http": {
            "defaultHealthyRetryPolicy": http.default_healthy_retry_policy.unwrap_or_default(),
            "disableSubscriptionOverrides": http.disable_subscription_overrides,
            "defaultRequestPolicy": {"headerContentType": "text/plain; charset=UTF-8"},
        }
    })
    .to_string()
}

/// An http subscription's EffectiveDeliveryPolicy: its own retry policy, else the
/// topic's default, else SNS's (what the fan-out applies).
pub fn effective_subscription_delivery_policy(own: Option<&str>, topic: Option<&str>) -> String {
    let own = own
        .and_then(|p| subscription_policy(p).ok())
        .and_then(|p| p.healthy_retry_policy);
    let topic = topic
        .and_then(|p| topic_policy(p).ok())
        .and_then(|p| p.http)
        .and_then(|h| h.default_healthy_retry_policy);
    serde_json::json!({
        "healthyRetryPolicy": own.or(topic).unwrap_or_default(),
        "sicklyRetryPolicy": null,
        "throttlePolicy": null,
        "guaranteed": false,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_policies_follow_sns_rules() {
        let ok = r#"{"healthyRetryPolicy": {"numRetries": 3, "minDelayTarget": 1, "maxDelayTarget": 1, "backoffFunction": "linear"}}"#;
        assert!(check_subscription_delivery_policy(ok).is_ok());
        assert!(check_subscription_delivery_policy("{}").is_ok());
        for bad in [
            "not json",
            r#"{"throttlePolicy": {"maxReceivesPerSecond": 1}}"#,
            r#"{"healthyRetryPolicy": {"numRetries": 101}}"#,
            r#"{"healthyRetryPolicy": {"numRetries": 1, "numNoDelayRetries": 2}}"#,
            r#"{"healthyRetryPolicy": {"minDelayTarget": 0}}"#,
            r#"{"healthyRetryPolicy": {"minDelayTarget": 30, "maxDelayTarget": 20}}"#,
            r#"{"healthyRetryPolicy": {"minDelayTarget": 1, "maxDelayTarget": 3601}}"#,
            r#"{"healthyRetryPolicy": {"backoffFunction": "cubic"}}"#,
            r#"{"healthyRetryPolicy": {"numRetries": -1}}"#,
        ] {
            assert!(check_subscription_delivery_policy(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn effective_policies_fill_sns_defaults() {
        let topic: serde_json::Value =
            serde_json::from_str(&effective_topic_delivery_policy(None)).unwrap_or_default();
        let retry = &topic["http"]["defaultHealthyRetryPolicy"];
        assert_eq!(retry["numRetries"], 3);
        assert_eq!(retry["minDelayTarget"], 20);
        assert_eq!(retry["backoffFunction"], "linear");
        let own = r#"{"healthyRetryPolicy": {"numRetries": 5, "minDelayTarget": 2, "maxDelayTarget": 9}}"#;
        let sub: serde_json::Value =
            serde_json::from_str(&effective_subscription_delivery_policy(Some(own), None))
                .unwrap_or_default();
        assert_eq!(sub["healthyRetryPolicy"]["numRetries"], 5);
        assert_eq!(sub["healthyRetryPolicy"]["maxDelayTarget"], 9);
        let topic = r#"{"http": {"defaultHealthyRetryPolicy": {"numRetries": 7}}}"#;
        let sub: serde_json::Value =
            serde_json::from_str(&effective_subscription_delivery_policy(None, Some(topic)))
                .unwrap_or_default();
        assert_eq!(sub["healthyRetryPolicy"]["numRetries"], 7);
        let locked = r#"{"http": {"disableSubscriptionOverrides": true}}"#;
        assert!(check_topic_delivery_policy(locked).is_err());
        assert!(check_topic_delivery_policy(topic).is_ok());
    }
}

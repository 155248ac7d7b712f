//! The subscription actions: Subscribe, ConfirmSubscription, Unsubscribe,
//! ListSubscriptions, ListSubscriptionsByTopic, GetSubscriptionAttributes and
//! SetSubscriptionAttributes.
//!
//! What a protocol's endpoint must be (a queue ARN of this broker, an `http://` URL, an
//! engine topic) is the engine's to check (`Engine::subscribe_sns`), since it must hold
//! when the catalog changes; the attributes are checked here: RawMessageDelivery,
//! FilterPolicy (parsed as the fan-out will evaluate it, in the scope
//! FilterPolicyScope names), DeliveryPolicy (http only), RedrivePolicy (an existing
//! queue of this broker as the dead-letter target); the rest SNS has are refused by name.

use super::errors::{self, Cap};
use super::topics::after_token;
use super::{access, arns, policies, Ctx};
use crate::engine::{SnsSubscription, SnsTopicMeta};
use peregrine_aws_wire::sns::errors::{ErrorCode, WireError};
use peregrine_aws_wire::sns::filter::{FilterPolicy, Scope};
use peregrine_aws_wire::sns::model::{
    ConfirmSubscription, ListSubscriptionsByTopic, Page, Response, SetAttribute, Subscribe,
    SubscriptionRef, SubscriptionSummary,
};
use peregrine_aws_wire::sqs::receipt;
use peregrine_shards::security::{Operation, ResourceType};
use peregrine_shards::sns::AUTHENTICATE_ON_UNSUBSCRIBE;
use std::collections::BTreeMap;

/// Subscriptions per List page, as SNS answers.
pub const LIST_SUBSCRIPTIONS_PAGE: usize = 100;
/// What Subscribe answers for an http subscription still waiting for its confirmation,
/// unless ReturnSubscriptionArn was set; and ListSubscriptions' ARN for it.
const PENDING_ANSWER: &str = "pending confirmation";
const PENDING_LISTED: &str = "PendingConfirmation";

pub const RAW_MESSAGE_DELIVERY: &str = "RawMessageDelivery";
pub const FILTER_POLICY: &str = "FilterPolicy";
pub const FILTER_POLICY_SCOPE: &str = "FilterPolicyScope";
pub const DELIVERY_POLICY: &str = "DeliveryPolicy";

pub const REDRIVE_POLICY: &str = "RedrivePolicy";

/// SNS subscription attributes the broker does not honour: refused rather than kept.
const NOT_HONOURED: &[&str] = &["SubscriptionRoleArn", "ReplayPolicy"];

pub async fn subscribe(ctx: &Ctx<'_>, req: Subscribe) -> Result<Response, WireError> {
    let topic = ctx.topic(&req.topic_arn)?;
    let endpoint = req
        .endpoint
        .filter(|e| !e.is_empty())
        .ok_or_else(|| WireError::missing("Endpoint"))?;
    let attributes = checked_attributes(&req.protocol, req.attributes)?;
    check_dead_letter_queue(ctx, &attributes)?;
    let sub = ctx
        .engine
        .subscribe_sns(&topic.name, &req.protocol, &endpoint, attributes)
        .await
        .map_err(|e| errors::from_engine(e, Cap::Subscriptions))?;
    let subscription_arn = match sub.confirmed || req.return_subscription_arn {
        true => ctx.subscription_arn(&topic.name, &sub.id),
        false => PENDING_ANSWER.to_string(),
    };
    Ok(Response::Subscribe { subscription_arn })
}

/// The attributes a Subscribe sets, checked together (a FilterPolicy in the scope given
/// beside it) and normalised as they are kept.
fn checked_attributes(
    protocol: &str,
    given: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, WireError> {
    let mut kept = BTreeMap::new();
    for (name, value) in given {
        let value = check_attribute(protocol, &name, &value)?;
        kept.insert(name, value);
    }
    check_filter(&kept)?;
    Ok(kept)
}

/// Whether SNS (and the broker) takes `value` for subscription attribute `name` of a
/// `protocol` subscription; the value as kept.
fn check_attribute(protocol: &str, name: &str, value: &str) -> Result<String, WireError> {
    match name {
        RAW_MESSAGE_DELIVERY => match value.to_ascii_lowercase().as_str() {
            v @ ("true" | "false") => Ok(v.to_string()),
            _ => Err(WireError::invalid(
                "RawMessageDelivery: must be true or false",
            )),
        },
        FILTER_POLICY => Ok(value.to_string()),
        FILTER_POLICY_SCOPE => match value {
            "MessageAttributes" | "MessageBody" => Ok(value.to_string()),
            _ => Err(WireError::invalid(
                "FilterPolicyScope: must be MessageAttributes or MessageBody",
            )),
        },
        DELIVERY_POLICY if !crate::sns::http_delivery::is_http(protocol) => {
            Err(WireError::invalid(format!(
                "DeliveryPolicy: only http and https subscriptions have one, not {protocol}"
            )))
        }
        DELIVERY_POLICY => {
            policies::check_subscription_delivery_policy(value)?;
            Ok(value.to_string())
        }
        REDRIVE_POLICY => {
            redrive_target(value)?;
            Ok(value.to_string())
        }
        other if NOT_HONOURED.contains(&other) => Err(WireError::invalid(format!(
            "Attributes: {other} is not supported by this broker"
        ))),
        other => Err(WireError::invalid(format!(
            "Attributes: unknown attribute {other}"
        ))),
    }
}

/// A subscription's FilterPolicy must parse in its FilterPolicyScope (by default
/// MessageAttributes), exactly as the fan-out will evaluate it.
fn check_filter(attributes: &BTreeMap<String, String>) -> Result<(), WireError> {
    let Some(policy) = attributes.get(FILTER_POLICY).filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let scope = match attributes.get(FILTER_POLICY_SCOPE).map(String::as_str) {
        Some("MessageBody") => Scope::MessageBody,
        _ => Scope::MessageAttributes,
    };
    FilterPolicy::parse(policy, scope).map(|_| ())
}

/// A RedrivePolicy's dead-letter target: `{"deadLetterTargetArn": ARN}`, nothing else.
fn redrive_target(value: &str) -> Result<String, WireError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Redrive {
        dead_letter_target_arn: String,
    }
    serde_json::from_str::<Redrive>(value)
        .map(|r| r.dead_letter_target_arn)
        .map_err(|e| WireError::invalid(format!("RedrivePolicy: {e}")))
}

/// A RedrivePolicy must name a queue of this broker that exists now (the fan-out sends
/// a delivery that failed for good there).
fn check_dead_letter_queue(
    ctx: &Ctx<'_>,
    attributes: &BTreeMap<String, String>,
) -> Result<(), WireError> {
    let Some(policy) = attributes.get(REDRIVE_POLICY).filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let arn = redrive_target(policy)?;
    let settings = ctx.settings();
    let queue = settings.queue_of_arn(&arn);
    match queue {
        Some(q) if ctx.engine.queue_config(q).is_some() => Ok(()),
        _ => Err(WireError::invalid(format!(
            "RedrivePolicy: deadLetterTargetArn {arn:?} is no existing queue of this broker"
        ))),
    }
}

pub async fn confirm(ctx: &Ctx<'_>, req: ConfirmSubscription) -> Result<Response, WireError> {
    let topic = ctx.topic(&req.topic_arn)?;
    let sub = ctx
        .engine
        .confirm_subscription(&topic.name, &req.token, req.authenticate_on_unsubscribe)
        .await
        // A restore (an UnsubscribeConfirmation's token) counts against the cap.
        .map_err(|e| errors::from_engine(e, Cap::Subscriptions))?;
    Ok(Response::ConfirmSubscription {
        subscription_arn: ctx.subscription_arn(&topic.name, &sub.id),
    })
}

/// The topic and subscription a SubscriptionArn names: InvalidParameter when it is no
/// subscription ARN here, NotFound when either does not exist.
fn find(ctx: &Ctx<'_>, arn: &str) -> Result<(SnsTopicMeta, SnsSubscription), WireError> {
    let Some(arns::Named::Subscription { topic, id }) = arns::parse(arn, ctx.settings()) else {
        return Err(WireError::invalid(format!(
            "SubscriptionArn: {arn:?} is no subscription ARN here"
        )));
    };
    let meta = ctx
        .engine
        .sns_topic(topic)
        .ok_or_else(|| errors::subscription_not_found(arn))?;
    let sub = meta
        .subscriptions
        .get(id)
        .cloned()
        .ok_or_else(|| errors::subscription_not_found(arn))?;
    Ok((meta, sub))
}

/// Unsubscribe: NotFound for a subscription that does not exist (the engine's own call
/// is idempotent; SNS's answer is not).
pub async fn unsubscribe(ctx: &Ctx<'_>, req: SubscriptionRef) -> Result<Response, WireError> {
    let (topic, sub) = find(ctx, &req.subscription_arn)?;
    // Confirmed with AuthenticateOnUnsubscribe: the UnsubscribeURL of a notification (an
    // unsigned GET) no longer removes it, as in SNS.
    if sub.attributes.contains_key(AUTHENTICATE_ON_UNSUBSCRIBE) && !ctx.caller.signed {
        return Err(WireError::new(
            ErrorCode::AuthorizationError,
            "This subscription was confirmed with AuthenticateOnUnsubscribe: Unsubscribe must be signed",
        ));
    }
    ctx.engine
        .unsubscribe(&topic.name, &sub.id)
        .await
        .map_err(|e| errors::from_engine(e, Cap::None))?;
    Ok(Response::Unsubscribe)
}

/// ListSubscriptions: every topic's, in (topic name, subscription id) order, pages of
/// 100; the token names the last one listed.
pub fn list(ctx: &Ctx<'_>, req: Page) -> Result<Response, WireError> {
    let after = after_token(req.next_token.as_deref())?;
    let after = after
        .as_deref()
        .map(|a| a.split_once('/').unwrap_or((a, "")));
    let mut topics = ctx.engine.sns_topics();
    topics.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    let rows = topics
        .iter()
        .flat_map(|t| t.subscriptions.values().map(move |s| (t.name.as_str(), s)));
    let rows = rows.filter(|(topic, s)| after.is_none_or(|a| (*topic, s.id.as_str()) > a));
    // Only the subscriptions of topics the caller may see (with --acls).
    let rows = rows.filter(|(topic, _)| {
        access::allowed(ctx, Operation::Describe, ResourceType::Exchange, topic)
    });
    let (subscriptions, last) = page(ctx, rows);
    let next_token = last.map(|(topic, id)| receipt::next_token(&format!("{topic}/{id}")));
    Ok(Response::ListSubscriptions {
        subscriptions,
        next_token,
    })
}

pub fn list_by_topic(ctx: &Ctx<'_>, req: ListSubscriptionsByTopic) -> Result<Response, WireError> {
    let topic = ctx.topic(&req.topic_arn)?;
    let after = after_token(req.next_token.as_deref())?;
    let rows = topic
        .subscriptions
        .values()
        .map(|s| (topic.name.as_str(), s))
        .filter(|(_, s)| after.as_deref().is_none_or(|a| s.id.as_str() > a));
    let (subscriptions, last) = page(ctx, rows);
    let next_token = last.map(|(_, id)| receipt::next_token(id));
    Ok(Response::ListSubscriptionsByTopic {
        subscriptions,
        next_token,
    })
}

/// One page of rows (already in order, after the token), and the last row's (topic, id)
/// when more follow.
fn page<'a>(
    ctx: &Ctx<'_>,
    mut rows: impl Iterator<Item = (&'a str, &'a SnsSubscription)>,
) -> (Vec<SubscriptionSummary>, Option<(&'a str, &'a str)>) {
    let mut out = Vec::new();
    let mut last = None;
    for (topic, s) in rows.by_ref().take(LIST_SUBSCRIPTIONS_PAGE) {
        out.push(summary(ctx, topic, s));
        last = Some((topic, s.id.as_str()));
    }
    let more = rows.next().is_some();
    (out, last.filter(|_| more))
}

fn summary(ctx: &Ctx<'_>, topic: &str, s: &SnsSubscription) -> SubscriptionSummary {
    SubscriptionSummary {
        subscription_arn: match s.confirmed {
            true => ctx.subscription_arn(topic, &s.id),
            false => PENDING_LISTED.to_string(),
        },
        owner: ctx.settings().account_id.clone(),
        protocol: s.protocol.clone(),
        endpoint: s.endpoint.clone(),
        topic_arn: ctx.topic_arn(topic),
    }
}

pub fn get_attributes(ctx: &Ctx<'_>, req: SubscriptionRef) -> Result<Response, WireError> {
    let (topic, sub) = find(ctx, &req.subscription_arn)?;
    let flag = |b: bool| if b { "true" } else { "false" }.to_string();
    let attr = |name: &str| sub.attributes.get(name).filter(|v| !v.is_empty()).cloned();
    let mut out = vec![
        ("Owner".to_string(), ctx.settings().account_id.clone()),
        ("TopicArn".to_string(), ctx.topic_arn(&topic.name)),
        ("Endpoint".to_string(), sub.endpoint.clone()),
        ("Protocol".to_string(), sub.protocol.clone()),
        ("PendingConfirmation".to_string(), flag(!sub.confirmed)),
        // Whoever confirms is not authenticated here beyond the token: a confirmed
        // subscription counts as authenticated, as SNS counts its own sqs ones.
        (
            "ConfirmationWasAuthenticated".to_string(),
            flag(sub.confirmed),
        ),
        (
            "SubscriptionArn".to_string(),
            ctx.subscription_arn(&topic.name, &sub.id),
        ),
        (
            RAW_MESSAGE_DELIVERY.to_string(),
            attr(RAW_MESSAGE_DELIVERY).unwrap_or_else(|| "false".to_string()),
        ),
    ];
    if let Some(policy) = attr(FILTER_POLICY) {
        out.push((FILTER_POLICY.to_string(), policy));
        let scope = attr(FILTER_POLICY_SCOPE).unwrap_or_else(|| "MessageAttributes".into());
        out.push((FILTER_POLICY_SCOPE.to_string(), scope));
    }
    if let Some(policy) = attr(REDRIVE_POLICY) {
        out.push((REDRIVE_POLICY.to_string(), policy));
    }
    if crate::sns::http_delivery::is_http(&sub.protocol) {
        let own = attr(DELIVERY_POLICY);
        if let Some(policy) = &own {
            out.push((DELIVERY_POLICY.to_string(), policy.clone()));
        }
        let topic_policy = topic.attributes.get(super::topics::DELIVERY_POLICY);
        let effective = policies::effective_subscription_delivery_policy(
            own.as_deref(),
            topic_policy.map(String::as_str),
        );
        out.push(("EffectiveDeliveryPolicy".to_string(), effective));
    }
    Ok(Response::GetSubscriptionAttributes { attributes: out })
}

/// SetSubscriptionAttributes: an absent or empty value removes the attribute.
pub async fn set_attribute(ctx: &Ctx<'_>, req: SetAttribute) -> Result<Response, WireError> {
    let (topic, sub) = find(ctx, &req.arn)?;
    let value = req.value.unwrap_or_default();
    let mut after = sub.attributes.clone();
    if value.is_empty() {
        // The name must still be one a subscription has.
        check_attribute(&sub.protocol, &req.name, probe(&req.name))?;
        after.remove(&req.name);
    } else {
        let kept = check_attribute(&sub.protocol, &req.name, &value)?;
        after.insert(req.name.clone(), kept);
    }
    check_filter(&after)?;
    check_dead_letter_queue(ctx, &after)?;
    let kept = after.get(&req.name).cloned().unwrap_or_default();
    ctx.engine
        .alter_subscription(&topic.name, &sub.id, &req.name, kept)
        .await
        .map_err(|e| errors::from_engine(e, Cap::None))?;
    Ok(Response::SetSubscriptionAttributes)
}

/// A value every kept attribute takes, to check a removal's name.
fn probe(name: &str) -> &'static str {
    match name {
        RAW_MESSAGE_DELIVERY => "false",
        FILTER_POLICY_SCOPE => "MessageAttributes",
        DELIVERY_POLICY => "{}",
        REDRIVE_POLICY => r#"{"deadLetterTargetArn": ""}"#,
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_aws_wire::sns::errors::ErrorCode;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn subscription_attributes_are_checked_and_normalised() {
        let got = checked_attributes("sqs", attrs(&[(RAW_MESSAGE_DELIVERY, "True")]));
        assert_eq!(got, Ok(attrs(&[(RAW_MESSAGE_DELIVERY, "true")])));
        for bad in [
            &[(RAW_MESSAGE_DELIVERY, "yes")][..],
            &[(FILTER_POLICY_SCOPE, "Body")],
            &[(DELIVERY_POLICY, "{}")],
            &[(REDRIVE_POLICY, "{}")],
            &[(
                REDRIVE_POLICY,
                r#"{"deadLetterTargetArn": "a", "maxReceiveCount": 3}"#,
            )],
            &[("ReplayPolicy", "{}")],
            &[("Bogus", "x")],
            &[(FILTER_POLICY, "{not json")],
        ] {
            let e = checked_attributes("sqs", attrs(bad)).err().map(|e| e.code);
            assert_eq!(e, Some(ErrorCode::InvalidParameter), "{bad:?}");
        }
    }

    #[test]
    fn a_filter_policy_is_parsed_in_its_scope() {
        let payload = r#"{"order": {"status": ["paid"]}}"#;
        let body = attrs(&[
            (FILTER_POLICY, payload),
            (FILTER_POLICY_SCOPE, "MessageBody"),
        ]);
        assert!(checked_attributes("sqs", body).is_ok());
        let flat = attrs(&[(FILTER_POLICY, r#"{"event": ["placed"]}"#)]);
        assert!(checked_attributes("sqs", flat).is_ok());
    }
}

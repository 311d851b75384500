//! The bus on SNS and SQS: a topic per event type; per subscription a
//! queue, its dead-letter queue, a policy letting only its topic send, and
//! the raw-delivery subscription. Names are the `sns+sqs://` bus's own.

use dozen_manifest::{Manifest, Subscription};
use serde_json::json;

use super::{get_att, logical, reference, Template};

/// The topics a service publishes or consumes, and per subscription its
/// queue, dead-letter queue, queue policy and SNS subscription.
pub(super) fn messaging(t: &mut Template, manifest: &Manifest) {
    let topics = manifest
        .publishes
        .iter()
        .chain(manifest.subscriptions.iter().map(|s| &s.topic));
    for topic in topics {
        if t.topics.contains_key(topic) {
            continue;
        }
        let id = format!("{}Topic", logical(topic));
        let name = t.bus_name(topic);
        t.add(
            id.clone(),
            json!({
                "Type": "AWS::SNS::Topic",
                "Properties": { "TopicName": name, "KmsMasterKeyId": reference("Key") },
            }),
        );
        t.topics.insert(topic.clone(), id);
    }
    for subscription in &manifest.subscriptions {
        queue(t, subscription);
    }
}

fn queue(t: &mut Template, sub: &Subscription) {
    let id = logical(&sub.name);
    let topic = t.topics[&sub.topic].clone();
    let dead_name = t.bus_name(&format!("{}-dead", sub.name));
    let name = t.bus_name(&sub.name);
    t.add(
        format!("{id}DeadQueue"),
        json!({
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": dead_name,
                "MessageRetentionPeriod": 1_209_600,
                "KmsMasterKeyId": reference("Key"),
                "Tags": [{ "Key": "dozen-dead-letters-of", "Value": sub.name }],
            },
        }),
    );
    t.add(
        format!("{id}Queue"),
        json!({
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": name,
                "VisibilityTimeout": sub.visibility_timeout_seconds,
                "MessageRetentionPeriod": 1_209_600,
                "KmsMasterKeyId": reference("Key"),
                "RedrivePolicy": {
                    "deadLetterTargetArn": get_att(&format!("{id}DeadQueue"), "Arn"),
                    "maxReceiveCount": sub.max_attempts,
                },
                "Tags": [
                    { "Key": "dozen-subscription", "Value": sub.name },
                    { "Key": "dozen-topic", "Value": sub.topic },
                ],
            },
        }),
    );
    t.add(
        format!("{id}QueuePolicy"),
        json!({
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [reference(&format!("{id}Queue"))],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Sid": "only-its-topic",
                        "Effect": "Allow",
                        "Principal": { "Service": "sns.amazonaws.com" },
                        "Action": "sqs:SendMessage",
                        "Resource": get_att(&format!("{id}Queue"), "Arn"),
                        "Condition": { "ArnEquals": { "aws:SourceArn": reference(&topic) } },
                    }],
                },
            },
        }),
    );
    t.add(
        format!("{id}Subscription"),
        json!({
            "Type": "AWS::SNS::Subscription",
            "Properties": {
                "TopicArn": reference(&topic),
                "Protocol": "sqs",
                "Endpoint": get_att(&format!("{id}Queue"), "Arn"),
                "RawMessageDelivery": true,
            },
        }),
    );
}

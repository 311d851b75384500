//! Per service: its log group, buckets for its object stores, and its roles.

use dozen_manifest::{Backing, Need};
use serde_json::{json, Value};

use super::{
    assume, bucket_id, execution_role, get_att, logical, parameter, policy, reference, sub,
    Template,
};
use crate::export::plan::Plan;

/// The service's log group, buckets for its object stores, and its roles:
/// the task role may publish only its topics, consume only its queues and
/// write only its buckets; the execution role reads only its secrets.
pub(super) fn service_resources(t: &mut Template, plan: &Plan, service: &str) {
    let manifest = plan.manifest(service);
    let id = logical(service);
    t.add(
        format!("{id}Logs"),
        json!({
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": sub(&format!("/${{AWS::StackName}}/{service}")),
                "RetentionInDays": 365,
                "KmsKeyId": get_att("Key", "Arn"),
            },
        }),
    );
    let mut statements = Vec::new();
    if manifest.var("BUS_URL").is_some() {
        // Neither call can be limited to resources: finding topics by name, the readiness ping.
        statements.push(json!({ "Sid": "FindTopicsAndPingTheBus", "Effect": "Allow", "Action": ["sns:ListTopics", "sqs:ListQueues"], "Resource": "*" }));
    }
    if !manifest.publishes.is_empty() {
        let topics: Vec<Value> = manifest
            .publishes
            .iter()
            .map(|topic| reference(&t.topics[topic]))
            .collect();
        statements.push(json!({ "Sid": "PublishItsTopics", "Effect": "Allow", "Action": "sns:Publish", "Resource": topics }));
    }
    if !manifest.subscriptions.is_empty() {
        let queues = |suffix: &str| -> Vec<Value> {
            manifest
                .subscriptions
                .iter()
                .map(|s| get_att(&format!("{}{suffix}", logical(&s.name)), "Arn"))
                .collect()
        };
        statements.push(json!({
            "Sid": "ConsumeItsQueues",
            "Effect": "Allow",
            "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ListQueueTags"],
            "Resource": queues("Queue"),
        }));
        statements.push(json!({
            "Sid": "DeadLetterToItsQueues",
            "Effect": "Allow",
            "Action": ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
            "Resource": queues("DeadQueue"),
        }));
    }
    for var in manifest
        .vars
        .iter()
        .filter(|v| v.attaches == Some(Backing::ObjectStore))
    {
        let bucket = bucket_id(service, &var.name);
        t.add(bucket.clone(), json!({
            "Type": "AWS::S3::Bucket",
            "Metadata": { "checkov": { "skip": [{ "id": "CKV_AWS_18", "comment": "Cold storage is written by one task role only; CloudTrail data events, not server access logs, audit it where needed." }] } },
            "Properties": {
                "BucketEncryption": { "ServerSideEncryptionConfiguration": [{ "ServerSideEncryptionByDefault": { "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": get_att("Key", "Arn") }, "BucketKeyEnabled": true }] },
                "VersioningConfiguration": { "Status": "Enabled" },
                "OwnershipControls": { "Rules": [{ "ObjectOwnership": "BucketOwnerEnforced" }] },
                "PublicAccessBlockConfiguration": { "BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true },
            },
        }));
        statements.push(json!({ "Sid": format!("List{bucket}"), "Effect": "Allow", "Action": "s3:ListBucket", "Resource": get_att(&bucket, "Arn") }));
        statements.push(json!({ "Sid": format!("ReadWrite{bucket}"), "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": sub(&format!("${{{bucket}.Arn}}/*")) }));
    }
    // Topics, queues and buckets are all encrypted with the stack's key.
    if statements.len() > usize::from(manifest.var("BUS_URL").is_some()) {
        statements.push(json!({ "Sid": "UseTheStackKey", "Effect": "Allow", "Action": ["kms:GenerateDataKey*", "kms:Decrypt"], "Resource": get_att("Key", "Arn") }));
    }
    if !statements.is_empty() {
        t.add(
            format!("{id}TaskRole"),
            json!({
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": assume("ecs-tasks.amazonaws.com"),
                    "Policies": [policy(service, statements)],
                },
            }),
        );
    }
    let execution = execution_role(
        &format!("{service}-secrets"),
        "ReadItsSecrets",
        has_secrets(plan, service).then(|| parameter(service, "*")),
        super::cache::attached(plan, service),
    );
    t.add(format!("{id}ExecutionRole"), execution);
}

pub(super) fn has_secrets(plan: &Plan, service: &str) -> bool {
    let manifest = plan.manifest(service);
    manifest.vars.iter().any(|v| v.need == Need::Secret)
}

pub(super) fn has_task_role(plan: &Plan, service: &str) -> bool {
    let manifest = plan.manifest(service);
    manifest.var("BUS_URL").is_some()
        || manifest
            .vars
            .iter()
            .any(|v| v.attaches == Some(Backing::ObjectStore))
}

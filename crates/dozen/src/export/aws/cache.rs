//! The cache (presence, typing, signals between instances) as ElastiCache
//! for Redis: two nodes in the private subnets, encrypted at rest with the
//! stack's key and in transit (TLS only), an AUTH token the stack generates
//! in Secrets Manager, and reachable only from the tasks. The services'
//! `CACHE_URL` (`rediss://:<token>@<endpoint>:6379`) is made by the stack
//! too, as a secret of its own that only their execution roles may read:
//! nothing to write by hand, and no task starts before it exists.

use dozen_manifest::Backing;
use serde_json::{json, Value};

use super::{get_att, reference, sub, Template};
use crate::export::plan::Plan;

pub(super) const PORT: u16 = 6379;
/// The logical id of the secret that holds the services' `CACHE_URL`.
pub(super) const URL_SECRET: &str = "CacheUrl";

/// Whether `service` attaches a cache.
pub(super) fn attached(plan: &Plan, service: &str) -> bool {
    plan.manifest(service)
        .vars
        .iter()
        .any(|v| v.attaches == Some(Backing::Cache))
}

/// Whether a service of the plan attaches a cache.
pub(super) fn needed(plan: &Plan) -> bool {
    plan.services()
        .iter()
        .any(|service| attached(plan, service))
}

/// What an execution role needs to hand a task its `CACHE_URL`.
pub(super) fn reading_its_url() -> [Value; 2] {
    [
        json!({ "Sid": "ReadTheCacheUrl", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": reference(URL_SECRET) }),
        json!({ "Sid": "DecryptTheCacheUrl", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": get_att("Key", "Arn") }),
    ]
}

pub(super) fn cache(t: &mut Template) {
    t.add("CacheAuthToken", json!({
        "Type": "AWS::SecretsManager::Secret",
        "Metadata": { "checkov": { "skip": [{ "id": "CKV2_AWS_57", "comment": "Rotating an ElastiCache AUTH token takes a ROTATE then a SET on the group, in step with the services' CACHE_URL: done by hand (docs/deploy.md), not by a Lambda." }] } },
        "Properties": {
            "Description": sub("${AWS::StackName}: the cache's AUTH token"),
            "KmsKeyId": reference("Key"),
            "GenerateSecretString": { "PasswordLength": 64, "ExcludePunctuation": true },
        },
    }));
    t.add(
        "CacheSubnets",
        json!({
            "Type": "AWS::ElastiCache::SubnetGroup",
            "Properties": {
                "Description": sub("${AWS::StackName}: the cache, in the tasks' subnets"),
                "SubnetIds": reference("PrivateSubnets"),
            },
        }),
    );
    t.add(
        "CacheSecurityGroup",
        json!({
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "The cache: Redis from the tasks only",
                "VpcId": reference("VpcId"),
                "SecurityGroupIngress": [{
                    "IpProtocol": "tcp", "FromPort": PORT, "ToPort": PORT,
                    "SourceSecurityGroupId": get_att("TaskSecurityGroup", "GroupId"),
                    "Description": "Redis from the tasks",
                }],
                "SecurityGroupEgress": [{
                    "IpProtocol": "-1", "CidrIp": "127.0.0.1/32",
                    "Description": "nothing: the cache starts no connection",
                }],
            },
        }),
    );
    t.add(
        "TasksToCache",
        json!({
            "Type": "AWS::EC2::SecurityGroupEgress",
            "Properties": {
                "GroupId": get_att("TaskSecurityGroup", "GroupId"),
                "IpProtocol": "tcp", "FromPort": PORT, "ToPort": PORT,
                "DestinationSecurityGroupId": get_att("CacheSecurityGroup", "GroupId"),
                "Description": "to the cache",
            },
        }),
    );
    t.add("Cache", json!({
        "Type": "AWS::ElastiCache::ReplicationGroup",
        "Metadata": { "checkov": { "skip": [{ "id": "CKV_AWS_134", "comment": "Presence and typing are of the moment: a restored snapshot would show people online who are not. Nothing in the cache needs a backup." }] } },
        "Properties": {
            "ReplicationGroupDescription": sub("${AWS::StackName}: presence, typing and signals between instances"),
            "Engine": "redis",
            "EngineVersion": "7.1",
            "CacheNodeType": "cache.t4g.micro",
            "NumCacheClusters": 2,
            "AutomaticFailoverEnabled": true,
            "MultiAZEnabled": true,
            "Port": PORT,
            "CacheSubnetGroupName": reference("CacheSubnets"),
            "SecurityGroupIds": [get_att("CacheSecurityGroup", "GroupId")],
            "AtRestEncryptionEnabled": true,
            "KmsKeyId": reference("Key"),
            "TransitEncryptionEnabled": true,
            "TransitEncryptionMode": "required",
            "AuthToken": sub("{{resolve:secretsmanager:${CacheAuthToken}}}"),
            "AutoMinorVersionUpgrade": true,
        },
    }));
    t.add(URL_SECRET, json!({
        "Type": "AWS::SecretsManager::Secret",
        "Metadata": { "checkov": { "skip": [{ "id": "CKV2_AWS_57", "comment": "Made from the AUTH token and the endpoint: it changes when they do (a stack update), not by rotation." }] } },
        "Properties": {
            "Description": sub("${AWS::StackName}: CACHE_URL, with the AUTH token"),
            "KmsKeyId": reference("Key"),
            "SecretString": sub("rediss://:{{resolve:secretsmanager:${CacheAuthToken}}}@${Cache.PrimaryEndPoint.Address}:${Cache.PrimaryEndPoint.Port}"),
        },
    }));
}

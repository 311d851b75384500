//! What every task shares: the stack's key, the cluster, the security
//! groups; and the load balancer that routes paths to web processes.

use serde_json::{json, Value};

use super::{get_att, logical, reference, sub, Template};
use crate::export::plan::{Plan, PORT};
use crate::export::DEREGISTRATION_SECONDS;

/// The key, the cluster, and the network rules every task shares.
pub(super) fn shared(t: &mut Template) {
    t.add("Key", json!({
        "Type": "AWS::KMS::Key",
        "Properties": {
            "Description": sub("${AWS::StackName}: logs, topics and cold storage"),
            "EnableKeyRotation": true,
            "KeyPolicy": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "the account administers the key",
                        "Effect": "Allow",
                        "Principal": { "AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root") },
                        "Action": "kms:*",
                        "Resource": "*",
                    },
                    {
                        "Sid": "CloudWatch Logs encrypts this stack's log groups",
                        "Effect": "Allow",
                        "Principal": { "Service": sub("logs.${AWS::Region}.amazonaws.com") },
                        "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                        "Resource": "*",
                        "Condition": { "ArnLike": { "kms:EncryptionContext:aws:logs:arn": sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/${AWS::StackName}/*") } },
                    },
                    {
                        "Sid": "SNS reads its encrypted topics and writes the encrypted queues",
                        "Effect": "Allow",
                        "Principal": { "Service": "sns.amazonaws.com" },
                        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                        "Resource": "*",
                        "Condition": { "StringEquals": { "aws:SourceAccount": reference("AWS::AccountId") } },
                    },
                ],
            },
        },
    }));
    t.add("Cluster", json!({
        "Type": "AWS::ECS::Cluster",
        "Properties": { "ClusterSettings": [{ "Name": "containerInsights", "Value": "enabled" }] },
    }));
    t.add("LoadBalancerSecurityGroup", json!({
        "Type": "AWS::EC2::SecurityGroup",
        "Metadata": { "checkov": { "skip": [{ "id": "CKV_AWS_260", "comment": "Port 80 only answers with a redirect to HTTPS (HttpListener); browsers typing the bare name need it." }] } },
        "Properties": {
            "GroupDescription": "The load balancer: HTTPS from anywhere, HTTP only to redirect",
            "VpcId": reference("VpcId"),
            "SecurityGroupIngress": [
                { "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0", "Description": "HTTPS" },
                { "IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIp": "0.0.0.0/0", "Description": "HTTP, redirected to HTTPS" },
            ],
        },
    }));
    t.add(
        "LoadBalancerToTasks",
        json!({
            "Type": "AWS::EC2::SecurityGroupEgress",
            "Properties": {
                "GroupId": get_att("LoadBalancerSecurityGroup", "GroupId"),
                "IpProtocol": "tcp", "FromPort": PORT, "ToPort": PORT,
                "DestinationSecurityGroupId": get_att("TaskSecurityGroup", "GroupId"),
                "Description": "to the tasks' PORT",
            },
        }),
    );
    let egress = |port: u16, cidr: Value, what: &str| json!({ "IpProtocol": "tcp", "FromPort": port, "ToPort": port, "CidrIp": cidr, "Description": what });
    t.add("TaskSecurityGroup", json!({
        "Type": "AWS::EC2::SecurityGroup",
        "Properties": {
            "GroupDescription": "Dozen tasks: PORT from the load balancer; out to AWS APIs, web pages, mail and the databases",
            "VpcId": reference("VpcId"),
            "SecurityGroupEgress": [
                egress(443, json!("0.0.0.0/0"), "HTTPS: AWS APIs, images, keys, link previews"),
                egress(80, json!("0.0.0.0/0"), "HTTP: link previews"),
                egress(587, json!("0.0.0.0/0"), "SMTP with STARTTLS"),
                egress(465, json!("0.0.0.0/0"), "SMTP over TLS"),
                egress(5432, reference("VpcCidr"), "PostgreSQL"),
            ],
        },
    }));
    t.add(
        "TasksFromLoadBalancer",
        json!({
            "Type": "AWS::EC2::SecurityGroupIngress",
            "Properties": {
                "GroupId": get_att("TaskSecurityGroup", "GroupId"),
                "IpProtocol": "tcp", "FromPort": PORT, "ToPort": PORT,
                "SourceSecurityGroupId": get_att("LoadBalancerSecurityGroup", "GroupId"),
                "Description": "PORT from the load balancer",
            },
        }),
    );
}

pub(super) fn load_balancer(t: &mut Template, plan: &Plan) {
    let routes = plan.routes();
    let Some((default, _)) = routes.iter().find(|(_, route)| *route == "/") else {
        return;
    };
    t.add("LoadBalancer", json!({
        "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "Metadata": { "checkov": { "skip": [{ "id": "CKV_AWS_91", "comment": "Access logs need a bucket whose policy names the region's ELB account; each environment turns them on with its own log bucket (docs/deploy.md)." }] } },
        "Properties": {
            "Type": "application",
            "Scheme": "internet-facing",
            "Subnets": reference("PublicSubnets"),
            "SecurityGroups": [reference("LoadBalancerSecurityGroup")],
            "LoadBalancerAttributes": [
                { "Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true" },
                { "Key": "routing.http.desync_mitigation_mode", "Value": "defensive" },
                { "Key": "deletion_protection.enabled", "Value": "true" },
                // Live streams stay open between events.
                { "Key": "idle_timeout.timeout_seconds", "Value": "300" },
            ],
        },
    }));
    for (process, _) in &routes {
        t.add(format!("{}TargetGroup", logical(&process.name)), json!({
            "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
            "Properties": {
                "VpcId": reference("VpcId"),
                "TargetType": "ip",
                "Protocol": "HTTP",
                "Port": PORT,
                "HealthCheckPath": "/readyz",
                "HealthCheckIntervalSeconds": 10,
                "HealthyThresholdCount": 2,
                "UnhealthyThresholdCount": 2,
                "Matcher": { "HttpCode": "200" },
                "TargetGroupAttributes": [{ "Key": "deregistration_delay.timeout_seconds", "Value": DEREGISTRATION_SECONDS.to_string() }],
            },
        }));
    }
    t.add("HttpsListener", json!({
        "Type": "AWS::ElasticLoadBalancingV2::Listener",
        "Properties": {
            "LoadBalancerArn": reference("LoadBalancer"),
            "Port": 443,
            "Protocol": "HTTPS",
            "SslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
            "Certificates": [{ "CertificateArn": reference("CertificateArn") }],
            "DefaultActions": [{ "Type": "forward", "TargetGroupArn": reference(&format!("{}TargetGroup", logical(&default.name))) }],
        },
    }));
    t.add("HttpListener", json!({
        "Type": "AWS::ElasticLoadBalancingV2::Listener",
        "Properties": {
            "LoadBalancerArn": reference("LoadBalancer"),
            "Port": 80,
            "Protocol": "HTTP",
            "DefaultActions": [{ "Type": "redirect", "RedirectConfig": { "Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301" } }],
        },
    }));
    for (priority, (process, route)) in routes.iter().filter(|(_, r)| *r != "/").enumerate() {
        t.add(format!("{}Route", logical(&process.name)), json!({
            "Type": "AWS::ElasticLoadBalancingV2::ListenerRule",
            "Properties": {
                "ListenerArn": reference("HttpsListener"),
                "Priority": (priority + 1) * 10,
                "Conditions": [{ "Field": "path-pattern", "PathPatternConfig": { "Values": [route, format!("{route}/*")] } }],
                "Actions": [{ "Type": "forward", "TargetGroupArn": reference(&format!("{}TargetGroup", logical(&process.name))) }],
            },
        }));
    }
}

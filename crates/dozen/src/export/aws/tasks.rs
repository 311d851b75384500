//! Task definitions, the services that run them with their autoscaling,
//! and the release phase's task.

use std::collections::{BTreeMap, BTreeSet};

use dozen_manifest::{Backing, Role};
use serde_json::{json, Value};

use super::cache;
use super::roles::{has_secrets, has_task_role};
use super::{
    bucket_id, execution_role, get_att, logical, parameter, reference, sub, value, Template,
};
use crate::export::plan::{Environment, Plan, Process, Value as Var, PORT};
use crate::export::GRACE_SECONDS;

/// The service's plain variables and its secrets (from SSM Parameter Store,
/// `/<stack>/<service>/<NAME>`); object stores point at the stack's
/// buckets, the cache at the stack's cache (its URL a secret of the stack).
pub(super) fn container_env(
    plan: &Plan,
    env: &Environment,
    service: &str,
) -> Result<(Vec<Value>, Vec<Value>), String> {
    let manifest = plan.manifest(service);
    let mut generated = env.clone();
    for var in manifest
        .vars
        .iter()
        .filter(|v| v.attaches == Some(Backing::ObjectStore))
    {
        let bucket = bucket_id(service, &var.name);
        let own = format!(
            "{}_{}",
            service.to_ascii_uppercase().replace('-', "_"),
            var.name
        );
        generated
            .vars
            .insert(own, format!("s3://${{{bucket}}}/{service}"));
    }
    let platform = BTreeMap::from([
        ("PORT", PORT.to_string()),
        ("RELEASE_ID", "${ImageTag}".to_owned()),
    ]);
    let mut plain = Vec::new();
    let mut secrets = Vec::new();
    for (name, var) in generated.for_service(manifest, &platform)? {
        let attaches = manifest.var(&name).and_then(|v| v.attaches);
        match var {
            Var::Plain(text) => plain.push(json!({ "Name": name, "Value": value(&text) })),
            // The stack's own cache: its URL (with the AUTH token) is the stack's secret.
            Var::Secret if attaches == Some(Backing::Cache) => secrets.push(json!({
                "Name": name,
                "ValueFrom": reference(cache::URL_SECRET),
            })),
            Var::Secret => secrets.push(json!({
                "Name": name,
                "ValueFrom": parameter(service, &name),
            })),
        }
    }
    Ok((plain, secrets))
}

pub(super) fn container(
    plan: &Plan,
    env: &Environment,
    name: &str,
    service: &str,
    args: &[String],
    tag: &str,
) -> Result<Value, String> {
    let (environment, secrets) = container_env(plan, env, service)?;
    let mut container = json!({
        "Name": name,
        "Image": sub(&format!("${{ImageRegistry}}/dozen-{service}:${{{tag}}}")),
        "Command": args,
        "Essential": true,
        "Environment": environment,
        "ReadonlyRootFilesystem": true,
        "User": "65532",
        "StopTimeout": GRACE_SECONDS,
        "LogConfiguration": {
            "LogDriver": "awslogs",
            "Options": {
                "awslogs-group": reference(&format!("{}Logs", logical(service))),
                "awslogs-region": reference("AWS::Region"),
                "awslogs-stream-prefix": name,
            },
        },
    });
    if !secrets.is_empty() {
        container["Secrets"] = Value::Array(secrets);
    }
    Ok(container)
}

pub(super) fn task_definition(
    plan: &Plan,
    family: &str,
    services: &BTreeSet<&str>,
    containers: Vec<Value>,
) -> Value {
    let mut properties = json!({
        "Family": sub(&format!("${{AWS::StackName}}-{family}")),
        "Cpu": "256",
        "Memory": "512",
        "NetworkMode": "awsvpc",
        "RequiresCompatibilities": ["FARGATE"],
        "RuntimePlatform": { "CpuArchitecture": "X86_64", "OperatingSystemFamily": "LINUX" },
        "ContainerDefinitions": containers,
    });
    // One service: its own roles. None named (the release phase): the release's execution role.
    if let [service] = services.iter().collect::<Vec<_>>()[..] {
        let id = logical(service);
        properties["ExecutionRoleArn"] = get_att(&format!("{id}ExecutionRole"), "Arn");
        if has_task_role(plan, service) {
            properties["TaskRoleArn"] = get_att(&format!("{id}TaskRole"), "Arn");
        }
    } else {
        properties["ExecutionRoleArn"] = get_att("ReleaseExecutionRole", "Arn");
    }
    json!({ "Type": "AWS::ECS::TaskDefinition", "Properties": properties })
}

/// The process's task definition, its service and its autoscaling: on CPU
/// for web processes, on the backlog of its queues for workers.
pub(super) fn ecs_service(
    t: &mut Template,
    plan: &Plan,
    env: &Environment,
    process: &Process,
) -> Result<(), String> {
    let id = logical(&process.name);
    let mut container = container(
        plan,
        env,
        &process.name,
        &process.service,
        &process.args,
        "ImageTag",
    )?;
    container["PortMappings"] =
        json!([{ "ContainerPort": PORT, "Protocol": "tcp", "Name": "http" }]);
    container["HealthCheck"] = json!({
        "Command": ["CMD", "/usr/local/bin/probe", "/healthz"],
        "Interval": 10, "Timeout": 3, "Retries": 3, "StartPeriod": 10,
    });
    let services = BTreeSet::from([process.service.as_str()]);
    t.add(
        format!("{id}Task"),
        task_definition(plan, &process.name, &services, vec![container]),
    );
    let web = matches!(process.role, Role::Web { .. });
    let min = if web { 2 } else { 1 };
    let mut service = json!({
        "Type": "AWS::ECS::Service",
        "Properties": {
            "Cluster": reference("Cluster"),
            "TaskDefinition": reference(&format!("{id}Task")),
            "LaunchType": "FARGATE",
            "PlatformVersion": "LATEST",
            "DesiredCount": min,
            "PropagateTags": "SERVICE",
            "DeploymentConfiguration": {
                "MinimumHealthyPercent": 100,
                "MaximumPercent": 200,
                "DeploymentCircuitBreaker": { "Enable": true, "Rollback": true },
            },
            "NetworkConfiguration": { "AwsvpcConfiguration": {
                "Subnets": reference("PrivateSubnets"),
                "SecurityGroups": [get_att("TaskSecurityGroup", "GroupId")],
                "AssignPublicIp": "DISABLED",
            } },
        },
    });
    if web {
        service["Properties"]["LoadBalancers"] = json!([{
            "ContainerName": process.name,
            "ContainerPort": PORT,
            "TargetGroupArn": reference(&format!("{id}TargetGroup")),
        }]);
        service["Properties"]["HealthCheckGracePeriodSeconds"] = json!(30);
        let mut depends = vec![json!("HttpsListener")];
        if t.resources.contains_key(&format!("{id}Route")) {
            depends.push(json!(format!("{id}Route")));
        }
        service["DependsOn"] = Value::Array(depends);
    }
    t.add(format!("{id}Service"), service);
    t.add(
        format!("{id}Scaling"),
        json!({
            "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
            "Properties": {
                "ServiceNamespace": "ecs",
                "ScalableDimension": "ecs:service:DesiredCount",
                "ResourceId": sub(&format!("service/${{Cluster}}/${{{id}Service.Name}}")),
                "MinCapacity": min,
                "MaxCapacity": 10,
            },
        }),
    );
    let subscriptions = &plan.manifest(&process.service).subscriptions;
    let target = if web || subscriptions.is_empty() {
        json!({
            "PredefinedMetricSpecification": { "PredefinedMetricType": "ECSServiceAverageCPUUtilization" },
            "TargetValue": 70,
        })
    } else {
        // The messages waiting in all of the worker's queues.
        let mut metrics: Vec<Value> = subscriptions
            .iter()
            .enumerate()
            .map(|(i, sub)| json!({
                "Id": format!("queue{i}"),
                "ReturnData": false,
                "MetricStat": {
                    "Stat": "Sum",
                    "Metric": {
                        "Namespace": "AWS/SQS",
                        "MetricName": "ApproximateNumberOfMessagesVisible",
                        "Dimensions": [{ "Name": "QueueName", "Value": get_att(&format!("{}Queue", logical(&sub.name)), "QueueName") }],
                    },
                },
            }))
            .collect();
        let sum = (0..subscriptions.len())
            .map(|i| format!("queue{i}"))
            .collect::<Vec<_>>()
            .join(" + ");
        metrics.push(json!({ "Id": "backlog", "Expression": sum, "Label": "messages waiting", "ReturnData": true }));
        json!({ "CustomizedMetricSpecification": { "Metrics": metrics }, "TargetValue": 100 })
    };
    let mut target = target;
    target["ScaleInCooldown"] = json!(120);
    target["ScaleOutCooldown"] = json!(60);
    t.add(
        format!("{id}ScalingPolicy"),
        json!({
            "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
            "Properties": {
                "PolicyName": sub(&format!("${{AWS::StackName}}-{}", process.name)),
                "PolicyType": "TargetTrackingScaling",
                "ScalingTargetId": reference(&format!("{id}Scaling")),
                "TargetTrackingScalingPolicyConfiguration": target,
            },
        }),
    );
    Ok(())
}

/// The release phase: one task whose containers run the steps in order
/// (each waits for the one before to succeed). Run it with the new
/// `ReleaseImageTag` before moving `ImageTag` (docs/deploy.md).
pub(super) fn release(t: &mut Template, plan: &Plan, env: &Environment) -> Result<(), String> {
    if plan.release.is_empty() {
        return Ok(());
    }
    let mut containers = Vec::new();
    for (i, step) in plan.release.iter().enumerate() {
        let mut container = container(
            plan,
            env,
            &step.name,
            &step.service,
            &step.args,
            "ReleaseImageTag",
        )?;
        let last = i + 1 == plan.release.len();
        container["Essential"] = json!(last);
        if i > 0 {
            container["DependsOn"] =
                json!([{ "ContainerName": plan.release[i - 1].name, "Condition": "SUCCESS" }]);
        }
        containers.push(container);
    }
    let services: BTreeSet<&str> = plan.release.iter().map(|s| s.service.as_str()).collect();
    let paths: Vec<Value> = services
        .iter()
        .filter(|service| has_secrets(plan, service))
        .map(|service| parameter(service, "*"))
        .collect();
    let role = execution_role(
        "release-secrets",
        "ReadTheStepsSecrets",
        (!paths.is_empty()).then_some(Value::Array(paths)),
        services
            .iter()
            .any(|service| cache::attached(plan, service)),
    );
    t.add("ReleaseExecutionRole", role);
    // Its own execution role (the steps' secrets), no task role: migrations call no AWS API.
    t.add(
        "ReleaseTask",
        task_definition(plan, "release", &BTreeSet::new(), containers),
    );
    Ok(())
}

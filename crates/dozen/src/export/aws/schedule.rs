//! The schedule's jobs as EventBridge Scheduler schedules running ECS tasks.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::roles::has_task_role;
use super::tasks::{container, task_definition};
use super::{assume, get_att, logical, policy, reference, sub, Template};
use crate::export::plan::{Environment, Plan};

/// A five-field cron (UTC) as EventBridge Scheduler's six fields, where one
/// of day-of-month and day-of-week must be `?` and Sunday is 1.
pub fn scheduler_cron(five: &str) -> Result<String, String> {
    let fields: Vec<&str> = five.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields[..] else {
        return Err(format!("{five:?}: expected five fields"));
    };
    let (dom, dow) = match (dom, dow) {
        (dom, "*") => (dom.to_owned(), "?".to_owned()),
        ("*", dow) => ("?".to_owned(), weekdays(dow)?),
        _ => {
            return Err(format!(
                "{five:?}: AWS cannot take both a day of month and a day of week"
            ))
        }
    };
    Ok(format!("cron({minute} {hour} {dom} {month} {dow} *)"))
}

fn weekdays(field: &str) -> Result<String, String> {
    let day = |text: &str| -> Result<String, String> {
        let n: u32 = text.parse().ok().filter(|n| *n <= 7).ok_or_else(|| {
            format!("day of week {text:?}: AWS export takes 0-7, lists and ranges")
        })?;
        Ok((n % 7 + 1).to_string())
    };
    field
        .split(',')
        .map(|part| match part.split_once('-') {
            Some((from, to)) => Ok(format!("{}-{}", day(from)?, day(to)?)),
            None => day(part),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|days| days.join(","))
}

pub(super) fn schedule(t: &mut Template, plan: &Plan, env: &Environment) -> Result<(), String> {
    if plan.jobs.is_empty() {
        return Ok(());
    }
    let mut definitions = Vec::new();
    let mut roles = BTreeSet::new();
    for job in &plan.jobs {
        let id = logical(&job.name);
        let container = container(plan, env, &job.name, &job.service, &job.args, "ImageTag")?;
        let services = BTreeSet::from([job.service.as_str()]);
        t.add(
            format!("{id}Task"),
            task_definition(plan, &job.name, &services, vec![container]),
        );
        definitions.push(sub(&format!("arn:${{AWS::Partition}}:ecs:${{AWS::Region}}:${{AWS::AccountId}}:task-definition/${{AWS::StackName}}-{}:*", job.name)));
        let service = logical(&job.service);
        roles.insert(format!("{service}ExecutionRole"));
        if has_task_role(plan, &job.service) {
            roles.insert(format!("{service}TaskRole"));
        }
        let cron = job
            .cron
            .as_deref()
            .map(scheduler_cron)
            .transpose()?
            .unwrap_or_default();
        t.add(
            format!("{id}Schedule"),
            json!({
                "Type": "AWS::Scheduler::Schedule",
                "Properties": {
                    "Description": format!("{}: {}", job.name, job.args.join(" ")),
                    "ScheduleExpression": cron,
                    "ScheduleExpressionTimezone": "UTC",
                    "FlexibleTimeWindow": { "Mode": "OFF" },
                    "Target": {
                        "Arn": get_att("Cluster", "Arn"),
                        "RoleArn": get_att("SchedulerRole", "Arn"),
                        "RetryPolicy": { "MaximumRetryAttempts": 0 },
                        "EcsParameters": {
                            "TaskDefinitionArn": reference(&format!("{id}Task")),
                            "LaunchType": "FARGATE",
                            "TaskCount": 1,
                            "NetworkConfiguration": { "AwsvpcConfiguration": {
                                "Subnets": reference("PrivateSubnets"),
                                "SecurityGroups": [get_att("TaskSecurityGroup", "GroupId")],
                                "AssignPublicIp": "DISABLED",
                            } },
                        },
                    },
                },
            }),
        );
    }
    let passed: Vec<Value> = roles.iter().map(|role| get_att(role, "Arn")).collect();
    t.add("SchedulerRole", json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": assume("scheduler.amazonaws.com"),
            "Policies": [policy("run-scheduled-tasks", vec![
                json!({ "Sid": "RunTheJobs", "Effect": "Allow", "Action": "ecs:RunTask", "Resource": definitions,
                        "Condition": { "ArnEquals": { "ecs:cluster": get_att("Cluster", "Arn") } } }),
                json!({ "Sid": "PassTheJobsRoles", "Effect": "Allow", "Action": "iam:PassRole", "Resource": passed,
                        "Condition": { "StringLike": { "iam:PassedToService": "ecs-tasks.amazonaws.com" } } }),
            ])],
        },
    }));
    Ok(())
}

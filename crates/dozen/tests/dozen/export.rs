//! The checked-in deployment files against the code they come from: the
//! Procfile, the schedule and each service's manifest.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dozen::export::{self, plan::Plan, Artifact, Target};
use dozen_manifest::{Manifest, Need, Role};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The manifests as the services' code declares them (what `describe` prints).
fn manifest_of(program: &str) -> Result<Manifest, String> {
    match program {
        "accounts" => Ok(accounts::manifest::manifest()),
        "cards" => Ok(cards::manifest::manifest()),
        "chat" => Ok(chat::manifest::manifest()),
        "notifier" => Ok(notifier::manifest::manifest()),
        "web" => Ok(web::manifest::manifest()),
        other => Err(format!("no service {other}")),
    }
}

fn plan() -> Plan {
    export::plan(&repo(), manifest_of).unwrap()
}

fn rendered(plan: &Plan, target: Target) -> Vec<Artifact> {
    export::render(&repo(), plan, target).unwrap()
}

/// Every document of the target's files.
fn documents(plan: &Plan, target: Target) -> Vec<Value> {
    rendered(plan, target)
        .into_iter()
        .flat_map(|a| a.documents)
        .collect()
}

fn required(manifest: &Manifest) -> BTreeSet<String> {
    manifest
        .required()
        .map(|v| v.name.clone())
        .chain(manifest.var("PORT").map(|v| v.name.clone()))
        .collect()
}

fn names(values: &Value, key: &str) -> BTreeSet<String> {
    values
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v[key].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_checked_in_deployment_files_are_what_dozen_export_writes_from_the_code() {
    let plan = plan();
    for target in Target::ALL {
        for artifact in rendered(&plan, target) {
            let checked_in =
                std::fs::read_to_string(repo().join(&artifact.path)).unwrap_or_default();
            assert!(
                checked_in == artifact.text,
                "{} is stale: run `cargo run -p dozen -- export` and commit the result",
                artifact.path
            );
        }
    }
}

#[test]
fn every_subscription_has_its_queues_and_sns_subscription_in_cloudformation_and_a_consumer_in_kubernetes(
) {
    let plan = plan();
    let template = &documents(&plan, Target::Aws)[0];
    let resources = template["Resources"].as_object().unwrap();
    let kubernetes = documents(&plan, Target::K8s);
    let mut checked = 0;
    for manifest in plan.manifests.values() {
        for sub in &manifest.subscriptions {
            let id = export::aws::logical(&sub.name);
            let queue = &resources[&format!("{id}Queue")]["Properties"];
            assert_eq!(
                queue["QueueName"]["Fn::Sub"],
                format!("${{AWS::StackName}}-{}", sub.name.replace('.', "_"))
            );
            assert_eq!(queue["VisibilityTimeout"], sub.visibility_timeout_seconds);
            assert_eq!(queue["RedrivePolicy"]["maxReceiveCount"], sub.max_attempts);
            assert_eq!(
                queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0],
                format!("{id}DeadQueue")
            );
            assert!(
                resources.contains_key(&format!("{id}DeadQueue")),
                "{}",
                sub.name
            );
            let subscription = &resources[&format!("{id}Subscription")]["Properties"];
            let topic = subscription["TopicArn"]["Ref"].as_str().unwrap();
            assert_eq!(
                resources[topic]["Properties"]["TopicName"]["Fn::Sub"],
                format!("${{AWS::StackName}}-{}", sub.topic.replace('.', "_"))
            );
            assert_eq!(subscription["RawMessageDelivery"], true);
            let policy = &resources[&format!("{id}QueuePolicy")]["Properties"]["PolicyDocument"];
            assert_eq!(
                policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"]["Ref"], topic,
                "only its topic may send to {}",
                sub.name
            );

            // Its consumer: a Deployment running the service's worker command.
            let worker = manifest
                .commands
                .iter()
                .find(|c| c.role == Role::Worker)
                .unwrap_or_else(|| panic!("{} subscribes but has no worker", manifest.service));
            let image = format!("dozen-{}:", manifest.service);
            let consumer = kubernetes.iter().any(|d| {
                d["kind"] == "Deployment"
                    && d["spec"]["template"]["spec"]["containers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|c| {
                            c["image"].as_str().unwrap().starts_with(&image)
                                && c["args"][0] == worker.name.as_str()
                        })
            });
            assert!(consumer, "no Deployment consumes {}", sub.name);
            checked += 1;
        }
    }
    assert_eq!(checked, 8, "the system has eight subscriptions");
}

#[test]
fn every_variable_a_service_requires_is_set_in_every_environment() {
    let plan = plan();
    let mut containers = 0;
    let service_of = |image: &str| {
        image
            .split("dozen-")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .unwrap()
            .to_owned()
    };
    // compose: each container's environment.
    let compose = &documents(&plan, Target::Compose)[0];
    for (name, service) in compose["services"].as_object().unwrap() {
        let Some(image) = service["image"]
            .as_str()
            .filter(|i| i.starts_with("dozen-"))
        else {
            continue;
        };
        let manifest = plan.manifest(&service_of(image));
        let set: BTreeSet<String> = service["environment"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let missing: Vec<_> = required(manifest).difference(&set).cloned().collect();
        assert!(missing.is_empty(), "compose {name} lacks {missing:?}");
        containers += 1;
    }
    // Kubernetes: the service's ConfigMap and the container's secret references.
    let kubernetes = documents(&plan, Target::K8s);
    let config = |service: &str| -> BTreeSet<String> {
        let map = kubernetes
            .iter()
            .find(|d| {
                d["kind"] == "ConfigMap" && d["metadata"]["name"] == format!("dozen-{service}")
            })
            .unwrap();
        map["data"].as_object().unwrap().keys().cloned().collect()
    };
    for document in &kubernetes {
        let pod = match document["kind"].as_str() {
            Some("Deployment" | "Job") => &document["spec"]["template"]["spec"],
            Some("CronJob") => &document["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            _ => continue,
        };
        let all = pod["containers"]
            .as_array()
            .into_iter()
            .chain(pod["initContainers"].as_array());
        for container in all.flatten() {
            let service = service_of(container["image"].as_str().unwrap());
            assert_eq!(
                container["envFrom"][0]["configMapRef"]["name"],
                format!("dozen-{service}")
            );
            let mut set = config(&service);
            set.extend(names(&container["env"], "name"));
            for secret in container["env"].as_array().into_iter().flatten() {
                assert_eq!(
                    secret["valueFrom"]["secretKeyRef"]["key"], secret["name"],
                    "secrets are referenced, not inlined"
                );
            }
            let manifest = plan.manifest(&service);
            let missing: Vec<_> = required(manifest).difference(&set).cloned().collect();
            assert!(
                missing.is_empty(),
                "kubernetes {} lacks {missing:?}",
                container["name"]
            );
            let secrets: BTreeSet<String> = manifest
                .vars
                .iter()
                .filter(|v| v.need == Need::Secret)
                .map(|v| v.name.clone())
                .collect();
            assert!(
                config(&service).is_disjoint(&secrets),
                "a secret of {service} is in its ConfigMap"
            );
            containers += 1;
        }
    }
    // AWS: each task definition's Environment and Secrets.
    let template = &documents(&plan, Target::Aws)[0];
    for (id, resource) in template["Resources"].as_object().unwrap() {
        if resource["Type"] != "AWS::ECS::TaskDefinition" {
            continue;
        }
        for container in resource["Properties"]["ContainerDefinitions"]
            .as_array()
            .unwrap()
        {
            let service = service_of(container["Image"]["Fn::Sub"].as_str().unwrap());
            let manifest = plan.manifest(&service);
            let mut set = names(&container["Environment"], "Name");
            set.extend(names(&container["Secrets"], "Name"));
            let missing: Vec<_> = required(manifest).difference(&set).cloned().collect();
            assert!(missing.is_empty(), "AWS {id} lacks {missing:?}");
            for secret in names(&container["Secrets"], "Name") {
                assert_eq!(manifest.var(&secret).unwrap().need, Need::Secret);
            }
            containers += 1;
        }
    }
    assert!(containers > 20, "only {containers} containers checked");
}

#[test]
fn each_task_role_may_publish_only_its_topics_and_consume_only_its_queues() {
    let plan = plan();
    let template = &documents(&plan, Target::Aws)[0];
    let resources = template["Resources"].as_object().unwrap();
    for manifest in plan.manifests.values() {
        let role = &resources.get(&format!(
            "{}TaskRole",
            export::aws::logical(&manifest.service)
        ));
        let Some(role) = role else {
            assert!(manifest.publishes.is_empty() && manifest.subscriptions.is_empty());
            continue;
        };
        let statements = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap();
        let resources_of = |sid: &str| -> BTreeSet<String> {
            statements
                .iter()
                .find(|s| s["Sid"] == sid)
                .map(|s| {
                    s["Resource"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        let topics: BTreeSet<String> = manifest
            .publishes
            .iter()
            .map(|t| {
                serde_json::json!({ "Ref": format!("{}Topic", export::aws::logical(t)) })
                    .to_string()
            })
            .collect();
        assert_eq!(
            resources_of("PublishItsTopics"),
            topics,
            "{}",
            manifest.service
        );
        let queues: BTreeSet<String> = manifest
            .subscriptions
            .iter()
            .map(|s| serde_json::json!({ "Fn::GetAtt": [format!("{}Queue", export::aws::logical(&s.name)), "Arn"] }).to_string())
            .collect();
        assert_eq!(
            resources_of("ConsumeItsQueues"),
            queues,
            "{}",
            manifest.service
        );
        for statement in statements {
            if statement["Resource"] == "*" {
                assert_eq!(
                    statement["Action"],
                    serde_json::json!(["sns:ListTopics", "sqs:ListQueues"])
                );
            }
        }
    }
}

#[test]
fn every_web_process_is_routed_by_its_path_in_the_ingress_and_the_load_balancer() {
    let plan = plan();
    let kubernetes = documents(&plan, Target::K8s);
    let ingress = kubernetes.iter().find(|d| d["kind"] == "Ingress").unwrap();
    let paths = ingress["spec"]["rules"][0]["http"]["paths"]
        .as_array()
        .unwrap();
    let template = &documents(&plan, Target::Aws)[0];
    let resources = template["Resources"].as_object().unwrap();
    for manifest in plan.manifests.values() {
        for command in &manifest.commands {
            let Role::Web { route } = &command.role else {
                continue;
            };
            let process = plan
                .processes
                .iter()
                .find(|p| p.service == manifest.service && p.args[0] == command.name)
                .unwrap();
            assert!(
                paths.iter().any(|p| p["path"] == route.as_str()
                    && p["backend"]["service"]["name"] == process.name.as_str()),
                "the ingress does not send {route} to {}",
                process.name
            );
            let group = format!("{}TargetGroup", export::aws::logical(&process.name));
            assert_eq!(
                resources[&group]["Properties"]["HealthCheckPath"],
                "/readyz"
            );
            if route != "/" {
                let rule = &resources[&format!("{}Route", export::aws::logical(&process.name))]
                    ["Properties"];
                assert_eq!(
                    rule["Conditions"][0]["PathPatternConfig"]["Values"][0],
                    route.as_str()
                );
                assert_eq!(rule["Actions"][0]["TargetGroupArn"]["Ref"], group);
            }
        }
    }
}

/// `dozen export` in a folder of its own, asking the service binaries built beside it.
fn export_in(folder: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dozen"))
        .current_dir(folder)
        .arg("export")
        .args(args)
        .env_remove("CARGO")
        .output()
        .unwrap()
}

#[test]
fn export_names_a_missing_required_variable_and_check_finds_a_stale_file() {
    let folder = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = folder.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "Procfile",
        "release: chat migrate\napi: chat serve\nworker: chat work\n",
    );
    write(
        "schedule",
        "archive: 0 3 * * 0 | chat archive --older-than 90d\n",
    );
    write(
        "deploy/env/compose.env",
        "DATABASE_URL=postgres://dozen:dozen@postgres/chat\nBUS_URL=nats://nats:4222\nARCHIVE_URL=file:///cold\n",
    );
    let output = export_in(folder.path(), &["compose"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("deploy/env/compose.env: chat's JWKS_URL is required"),
        "{stderr}"
    );

    write(
        "deploy/env/compose.env",
        "DATABASE_URL=postgres://dozen:dozen@postgres/chat\nBUS_URL=nats://nats:4222\nARCHIVE_URL=file:///cold\nJWKS_URL=http://accounts:8080/keys\nCACHE_URL=redis://redis:6379\n",
    );
    let output = export_in(folder.path(), &["compose"]);
    assert!(output.status.success(), "{output:?}");
    let compose = std::fs::read_to_string(folder.path().join("deploy/compose.yaml")).unwrap();
    assert!(compose.contains("release-chat-migrate:"), "{compose}");
    assert!(export_in(folder.path(), &["compose", "--check"])
        .status
        .success());

    write("deploy/compose.yaml", &compose.replace("serve", "work"));
    let output = export_in(folder.path(), &["compose", "--check"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains("deploy/compose.yaml is not what `dozen export` writes"));
}

#[test]
fn every_kubernetes_pod_is_under_a_network_policy_that_opens_at_most_its_port() {
    let plan = plan();
    let kubernetes = documents(&plan, Target::K8s);
    let policies: Vec<&Value> = kubernetes
        .iter()
        .filter(|d| d["kind"] == "NetworkPolicy")
        .collect();
    for workload in kubernetes
        .iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("Deployment" | "Job" | "CronJob")))
    {
        let name = &workload["metadata"]["labels"]["app.kubernetes.io/name"];
        let policy = policies
            .iter()
            .find(|p| {
                p["spec"]["podSelector"]["matchExpressions"][0]["values"]
                    .as_array()
                    .unwrap()
                    .contains(name)
            })
            .unwrap_or_else(|| panic!("no network policy selects {name}"));
        let open: Vec<&Value> = policy["spec"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|rule| rule["ports"].as_array().unwrap())
            .collect();
        let expected = if workload["kind"] == "Deployment" {
            vec![8080]
        } else {
            vec![]
        };
        assert_eq!(
            open.iter()
                .map(|p| p["port"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            expected,
            "{name}"
        );
    }
}

#[test]
fn the_cache_is_a_backing_service_of_every_deployment_and_only_its_users_may_read_its_url() {
    let plan = plan();
    let users: BTreeSet<String> = plan
        .manifests
        .values()
        .filter(|m| m.var("CACHE_URL").is_some())
        .map(|m| m.service.clone())
        .collect();
    assert_eq!(users, BTreeSet::from(["chat".to_owned()]));

    let compose = &documents(&plan, Target::Compose)[0];
    assert_eq!(compose["services"]["redis"]["image"], "redis:7-alpine");
    assert_eq!(
        compose["services"]["chat"]["depends_on"]["redis"]["condition"],
        "service_healthy"
    );
    assert_eq!(
        compose["services"]["chat"]["environment"]["CACHE_URL"],
        "redis://redis:6379"
    );

    // Kubernetes: from the service's Secret, never the ConfigMap.
    let chat = documents(&plan, Target::K8s)
        .into_iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "chat")
        .unwrap();
    let env = &chat["spec"]["template"]["spec"]["containers"][0]["env"];
    let cache = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "CACHE_URL")
        .unwrap();
    assert_eq!(
        cache["valueFrom"]["secretKeyRef"]["name"], "dozen-chat",
        "{cache}"
    );

    // AWS: the stack's ElastiCache, TLS and AUTH required; its URL a secret of
    // the stack that only the execution roles of its users may read.
    let template = &documents(&plan, Target::Aws)[0];
    let resources = template["Resources"].as_object().unwrap();
    let group = &resources["Cache"]["Properties"];
    assert_eq!(group["TransitEncryptionEnabled"], true);
    assert_eq!(group["TransitEncryptionMode"], "required");
    assert_eq!(group["AtRestEncryptionEnabled"], true);
    assert!(group["AuthToken"].to_string().contains("CacheAuthToken"));
    let readers: BTreeSet<String> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::IAM::Role")
        .filter(|(_, r)| {
            r["Properties"]["Policies"]
                .to_string()
                .contains("secretsmanager:GetSecretValue")
        })
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(
        readers,
        BTreeSet::from([
            "ChatExecutionRole".to_owned(),
            "ReleaseExecutionRole".to_owned()
        ])
    );
    let task = resources
        .iter()
        .find(|(id, r)| r["Type"] == "AWS::ECS::TaskDefinition" && id.starts_with("Chat"))
        .unwrap()
        .1;
    let secrets = &task["Properties"]["ContainerDefinitions"][0]["Secrets"];
    let cache = secrets
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Name"] == "CACHE_URL")
        .unwrap();
    assert_eq!(cache["ValueFrom"], serde_json::json!({ "Ref": "CacheUrl" }));
    let ingress = &resources["CacheSecurityGroup"]["Properties"]["SecurityGroupIngress"];
    assert_eq!(ingress.as_array().unwrap().len(), 1);
    assert_eq!(
        ingress[0]["SourceSecurityGroupId"],
        serde_json::json!({ "Fn::GetAtt": ["TaskSecurityGroup", "GroupId"] })
    );
}

//! Property tests: generated valid configs survive YAML serialisation and
//! validation unchanged, and the small parsers agree with their schemas.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use meshes::adapters::{ConnectionConfig, hubspot, log, mailchimp, slack, webhook};
use meshes::config::automation::{
    Automation, AutomationAction, Notify, Sequence, Step, Trigger, TriggerFilter, TriggerKind,
    WaitStep,
};
use meshes::config::duration::{self, Duration};
use meshes::config::env::{self, EnvString, Secret};
use meshes::config::model::{
    ConfigFile, DeliverySettings, MachineKey, Metadata, Rule, Scalar, Workspace,
};
use meshes::config::{self, CheckOptions, Source};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn metadata(action: &str) -> Metadata {
    Metadata {
        action: action.into(),
        id: None,
        value: None,
        subject: None,
        from: None,
        body: None,
        template: None,
        title: None,
        event_name_override: None,
    }
}

/// A connection and a valid metadata for one of its actions (`id` drawn by the caller).
fn connection(kind: u8, id: Scalar) -> (ConnectionConfig, Metadata) {
    match kind % 5 {
        0 => (
            ConnectionConfig::Log(log::LogConfig {
                format: log::LogFormat::Json,
                include_payload: false,
                delivery: None,
            }),
            metadata("log"),
        ),
        1 => {
            let hook = webhook::WebhookConfig {
                url: EnvString("https://example.com/hooks/meshes".into()),
                method: webhook::Method::Put,
                payload_format: webhook::PayloadFormat::Raw,
                signing_secret: Some(webhook::SigningSecrets::Many(vec![
                    Secret::new("${OLD_SECRET}"),
                    Secret::new("${NEW_SECRET}"),
                ])),
                auth: Some(webhook::WebhookAuth::Bearer { token: Secret::new("${HOOK_TOKEN}") }),
                headers: BTreeMap::from([("X-Tenant".to_string(), EnvString("acme".into()))]),
                delivery: None,
            };
            (ConnectionConfig::Webhook(hook), metadata("send_webhook"))
        }
        2 => {
            let cfg = hubspot::HubspotConfig {
                access_token: Some(Secret::new("${HUBSPOT_TOKEN}")),
                client_id: None,
                client_secret: None,
                refresh_token: None,
                base_url: None,
                delivery: None,
                mapping: Some(serde_json::from_value(serde_json::json!({
                    "plan": {"from": "payload.plan", "transforms": ["trim", "upper", {"substring": [0, 4]}], "default": "FREE"},
                    "company": {"value": "Acme"},
                    "signup_date": {"from": "payload.created", "transforms": ["to_date"], "on_error": "fail_action"}
                })).unwrap()),
            };
            (
                ConnectionConfig::Hubspot(cfg),
                Metadata { id: Some(id.clone()), value: Some(id), ..metadata("update_property") },
            )
        }
        3 => {
            let cfg = mailchimp::MailchimpConfig {
                api_key: Secret::new("${MAILCHIMP_API_KEY}"),
                data_center: Some(EnvString("us6".into())),
                base_url: None,
                delivery: None,
                mapping: None,
            };
            (ConnectionConfig::Mailchimp(cfg), Metadata { id: Some(id), ..metadata("add_to_list") })
        }
        _ => {
            let cfg = slack::SlackConfig {
                webhook_url: None,
                bot_token: Some(Secret::new("${SLACK_BOT_TOKEN}")),
                base_url: None,
                delivery: None,
            };
            (
                ConnectionConfig::Slack(cfg),
                Metadata {
                    id: Some(id),
                    template: Some("New {{payload.plan}} signup".into()),
                    ..metadata("send_message")
                },
            )
        }
    }
}

fn scalar() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        "[a-z0-9]{1,10}".prop_map(Scalar::String),
        "[0-9]{1,6}".prop_map(Scalar::String), // digits that must stay a string
        (0i64..1_000_000).prop_map(Scalar::Integer),
        any::<bool>().prop_map(Scalar::Bool),
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    (0u64..10_000_000_000).prop_map(Duration::from_millis)
}

prop_compose! {
    fn config()(
        uuid in any::<u128>(),
        name in "[a-z][a-z0-9-]{0,15}",
        kinds in prop::collection::vec((any::<u8>(), scalar()), 1..6),
        events in prop::collection::vec(("[a-z]{1,8}\\.[a-z]{1,8}", any::<usize>(), any::<bool>()), 0..10),
        schedule in prop::collection::vec(duration(), 1..8),
        jitter in 0u32..=20,
        concurrency in 1u32..=64,
        tags in prop::collection::vec("[a-z]{1,10}", 0..4),
        waits in prop::collection::vec(duration(), 1..4),
    ) -> ConfigFile {
        let u = format!("{uuid:032x}");
        let id = format!("{}-{}-{}-{}-{}", &u[..8], &u[8..12], &u[12..16], &u[16..20], &u[20..]);
        let mut connections = BTreeMap::new();
        let mut targets = Vec::new();
        for (i, (kind, scalar)) in kinds.into_iter().enumerate() {
            let (conn, meta) = connection(kind, scalar);
            connections.insert(format!("conn-{i}"), conn);
            targets.push((format!("conn-{i}"), meta));
        }
        let rules = events.into_iter().enumerate().map(|(i, (event, pick, cond))| {
            let (connection, metadata) = targets[pick % targets.len()].clone();
            Rule { id: format!("rule-{i}"), event, connection, metadata, resource: None, resource_id: None, mapping: None,
                   when: cond.then(|| "payload.amount > 10".into()), enabled: i % 3 != 0, description: None }
        }).collect();
        let steps = waits.into_iter().flat_map(|w| {
            let (connection, metadata) = targets[0].clone();
            [Step::Wait(WaitStep { wait: w }), Step::Deliver(Box::new(Notify { connection, metadata }))]
        }).collect();
        let sequences = BTreeMap::from([("drip".to_string(), Sequence { steps, exit_when: Some("contact.tags.exists(t, t == 'done')".into()), description: None })]);
        let mut actions: Vec<AutomationAction> = tags.iter().map(|t| AutomationAction::AddTag(t.clone())).collect();
        actions.push(AutomationAction::Enroll("drip".into()));
        let automations = vec![
            Automation { id: "onboard".into(), trigger: Trigger::Any(TriggerKind::ContactCreated), when: None, actions, enabled: true, description: Some("start the drip".into()) },
            Automation { id: "events".into(), trigger: Trigger::Filtered(TriggerFilter::CustomEvent("signed_in".into())), when: Some("event.name == 'x'".into()),
                         actions: vec![AutomationAction::Unenroll("drip".into())], enabled: true, description: None },
        ];
        let delivery = DeliverySettings { concurrency, ..DeliverySettings::default() };
        let mut delivery = delivery;
        delivery.retry.schedule = schedule;
        delivery.retry.jitter = f64::from(jitter) / 20.0;
        ConfigFile {
            version: 1,
            workspace: Workspace { id, name, publishable_key: EnvString("mesh_pub_prop".into()) },
            machine_keys: vec![MachineKey { access_key: EnvString("mk_prop".into()), secret: Secret::new("${MESHES_SECRET_KEY}"), name: None }],
            connections, rules, automations, sequences, delivery, contacts: Default::default(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn valid_configs_round_trip_through_yaml(cfg in config()) {
        let text = serde_saphyr::to_string(&cfg).unwrap();
        let report = config::check_sources(&[Source { name: "gen.yaml".into(), text: text.clone() }], CheckOptions::default());
        let errors: Vec<String> = report.diagnostics.iter().filter(|d| d.severity == config::Severity::Error).map(ToString::to_string).collect();
        prop_assert!(errors.is_empty(), "{}\n---\n{}", errors.join("\n"), text);
        prop_assert_eq!(&report.configs[0].1, &cfg);
    }

    #[test]
    fn duration_parser_accepts_exactly_the_schema_pattern(s in "[0-9a-z. ]{0,8}") {
        let pattern = regex_lite(&s);
        prop_assert_eq!(duration::parse(&s).is_ok() || too_large(&s), pattern, "{:?}", s);
    }

    #[test]
    fn durations_display_and_parse_back(ms in 0u64..100_000_000_000) {
        let d = Duration::from_millis(ms);
        prop_assert_eq!(duration::parse(&d.to_string()), Ok(d));
    }

    #[test]
    fn env_templates_never_panic_and_text_without_dollar_is_kept(s in ".{0,40}") {
        let _ = env::parse(&s);
        if !s.contains('$') {
            prop_assert_eq!(env::resolve(&s, |_| None), Ok(s.clone()));
        }
    }
}

/// `^([0-9]+(ms|s|m|h|d))+$`, written out so the test does not share code with the parser.
fn regex_lite(s: &str) -> bool {
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "s", "m", "h", "d"].into_iter().find(|u| rest.starts_with(u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

fn too_large(s: &str) -> bool {
    matches!(duration::parse(s), Err(duration::DurationError::TooLarge(_)))
}
